"""Text views for the terminal: a goal's live tree of steps, the tree's health, events.

Pure functions of the API's JSON, so they are tested without a daemon.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["GoalView", "describe_event", "render_health"]

_KEY_STEP = re.compile(r"^(?P<path>.*)#(?P<step>[^#\[@]+)(?:\[\d+\])?(?:@\d+)?$")

_MARKS = {
    "waiting": " ",
    "running": "▶",
    "retrying": "↻",
    "review": "⏸",
    "done": "✓",
    "failed": "✗",
}


@attrs.define
class _Step:
    state: str = "waiting"
    detail: str = ""
    done: int = 0


@attrs.define
class GoalView:
    """A goal's progress, folded from its events (``apply``) and drawn as text (``render``)."""

    goal_id: str
    goal: str = ""
    status: str = "queued"
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    steps: dict[tuple[str, str], _Step] = attrs.field(factory=dict)

    def apply(self, event: dict[str, Any]) -> None:
        kind: str = event["kind"]
        data: dict[str, Any] = event.get("data", {})
        if kind == "goal.accepted":
            self.goal = data.get("goal", self.goal)
        elif kind in ("goal.started", "goal.resumed"):
            self.status = "running"
            self.started = self.started or event["at"]
        elif kind == "goal.finished":
            self.status = data.get("status", "finished")
            self.error = data.get("error")
            self.finished = event["at"]
        elif kind == "attempt.started" and data.get("step") is not None:
            step = self._step(_parent(data["path"]), data["step"])
            step.state = "running"
            step.detail = f"{data['path']}, attempt {data['attempt']}"
        elif kind == "attempt.ended" and data.get("step") is not None:
            step = self._step(_parent(data["path"]), data["step"])
            if data.get("outcome") == "failed":
                step.state = "failed"
                step.detail = f"{data['path']}: {data.get('error', 'failed')}"
        elif kind == "step.checkpointed":
            match = _KEY_STEP.match(data["key"].rsplit(">", 1)[-1])
            if match is not None:
                step = self._step(match["path"], match["step"])
                step.state = "done"
                step.done += 1
                step.detail = f"{step.done} items" if "[" in data["key"] else ""
        elif kind == "review.requested":
            step = self._step(data["path"], data["step"])
            step.state = "review"
            step.detail = f"waiting for review {data['review']} (round {data['round']})"
        elif kind == "review.decided":
            for step in self.steps.values():
                if step.state == "review" and f"review {data.get('review')} " in step.detail:
                    step.state = "done" if data.get("decision") != "rejected" else "running"
                    step.detail = str(data.get("decision"))
                    if data.get("reason"):
                        step.detail += f": {data['reason']}"
        elif kind == "supervision.retry" and data.get("step") is not None:
            step = self._step(data["path"], data["step"])
            step.state = "retrying"
            step.detail = (
                f"retry in {data.get('delay', 0):.2g} s after {data.get('error_type', 'a failure')}"
            )
        elif kind == "supervision.reassign" and data.get("step") is not None:
            step = self._step(data["path"], data["step"])
            step.state = "retrying"
            step.detail = f"reassigned from {data.get('agent')} to {data.get('next_agent')}"
        elif kind == "supervision.escalate" and data.get("step") is not None:
            step = self._step(data["path"], data["step"])
            step.state = "failed"
            step.detail = f"escalated: {data.get('message', '')}"

    def _step(self, supervisor: str, name: str) -> _Step:
        return self.steps.setdefault((supervisor, name), _Step())

    @property
    def ended(self) -> bool:
        return self.status not in ("queued", "running")

    def render(self, now: float | None = None) -> str:
        """The goal's header line, then one line per step, grouped by supervisor."""
        if self.started is not None:
            end = self.finished if self.finished is not None else (now or time.time())
            elapsed = f" · {max(0.0, end - self.started):.1f} s"
        else:
            elapsed = ""
        lines = [f"goal {self.goal_id} · {self.status}{elapsed} · {self.goal}"]
        groups: dict[str, list[tuple[str, _Step]]] = {}
        for (supervisor, name), step in self.steps.items():
            groups.setdefault(supervisor, []).append((name, step))

        def draw(supervisor: str, depth: int) -> None:
            lines.append(f"{'  ' * depth}{supervisor}")
            for name, step in groups[supervisor]:
                mark = _MARKS.get(step.state, "?")
                detail = f"  {step.detail}" if step.detail else ""
                lines.append(f"{'  ' * depth}  {mark} {name:<16} {step.state}{detail}")
            for inner in groups:
                if inner.rpartition("/")[0] == supervisor:
                    draw(inner, depth + 1)

        for supervisor in groups:
            if supervisor.rpartition("/")[0] not in groups:
                draw(supervisor, 1)
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else path


def describe_event(event: dict[str, Any]) -> str:
    """One line for the event log: time, seq, kind, actor and the event's data."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event["at"]))
    data = " ".join(f"{k}={v}" for k, v in event.get("data", {}).items() if k != "token")
    return f"{stamp} #{event['seq']:<6} {event['kind']:<24} {event['actor']:<7} {data}".rstrip()


def render_health(tree: dict[str, Any]) -> str:
    """The live tree: one line per node, indented by depth."""
    head = (
        f"{tree['tree']}: {tree['goals_running']} running, {tree['goals_queued']} queued, "
        f"{tree['reviews_pending']} reviews pending"
        + ("" if tree["accepting"] else " · not accepting goals")
    )
    return "\n".join([head, *(_node_line(node) for node in tree["nodes"])])


def _node_line(node: dict[str, Any]) -> str:
    depth = node["path"].count("/")
    name = node["path"].rsplit("/", 1)[-1]
    bits = [
        f"in flight {node['in_flight']}",
        f"done {node['succeeded']}",
        f"failed {node['failed']}",
    ]
    extra: Iterable[tuple[str, Any]] = (
        ("breaker", node.get("breaker")),
        ("tripped", node.get("tripped")),
        ("live", node.get("live")),
        ("restarts", node.get("restarts")),
    )
    for label, value in extra:
        if value is not None and value is not False:
            bits.append(f"{label} {'yes' if value is True else value}")
    return f"{'  ' * depth}{name:<20} [{node['layer']}] " + ", ".join(bits)
