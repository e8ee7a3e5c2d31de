"""The readable outcome ``overstory run`` prints: the steps as a tree of supervisors, the
failure chain and the output; and the outcome as JSON for ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from overstory.hierarchy._outcome import FailureRecord, Outcome, StepRecord
from overstory.hierarchy._serde import converter

__all__ = ["OUTPUT_LINES", "OUTPUT_WIDTH", "render_outcome"]

#: How much of a goal's output the readable outcome shows.
OUTPUT_LINES = 40
OUTPUT_WIDTH = 160


def render_outcome(outcome: Outcome, *, verbose: bool = False) -> str:
    """The outcome as plain text: a header, the steps as a tree of supervisors, the
    failure chain and the output (its first :data:`OUTPUT_LINES` lines).

    Tracebacks of failures are shown only when ``verbose``.
    """
    return "\n".join(_render(outcome, verbose))


def _render(outcome: Outcome, verbose: bool) -> Iterator[str]:
    yield f"{outcome.tree}: {outcome.status.name} in {_seconds(outcome.duration)}"
    yield f"  goal  {outcome.goal}"
    yield f"  id    {outcome.goal_id}"
    total = outcome.usage.total
    if total.tokens or total.cost:
        yield (
            f"  usage {total.tokens:,} tokens ({total.input_tokens:,} in, "
            f"{total.output_tokens:,} out), cost {total.cost:g}, {total.attempts} leaf attempts"
        )
    if outcome.steps:
        yield ""
        yield "steps"
        yield from _render_steps(outcome.steps, outcome.failures)
    if outcome.failures:
        yield ""
        count = len(outcome.failures)
        yield f"failures ({count}{', recovered' if outcome.ok else ''})"
        for number, failure in enumerate(outcome.failures, 1):
            yield from _render_failure(number, failure, verbose)
    if outcome.ok:
        yield ""
        yield "output"
        yield from _render_output(outcome.output)


def _render_steps(
    records: Sequence[StepRecord], failures: Sequence[FailureRecord]
) -> Iterator[str]:
    groups: dict[str, list[StepRecord]] = {}
    for record in records:
        groups.setdefault(record.supervisor, []).append(record)

    def parent(path: str) -> str | None:
        head = path
        while "/" in head:
            head = head.rsplit("/", 1)[0]
            if head in groups:
                return head
        return None

    children: dict[str | None, list[str]] = {}
    for path in groups:
        children.setdefault(parent(path), []).append(path)

    def first_start(path: str) -> float:
        return min(record.started for record in groups[path])

    def entries(path: str, prefix: str) -> Iterator[str]:
        # Steps in the order they started; the items of a fan-out together, in item order.
        first: dict[str, float] = {}
        for record in groups[path]:
            first[record.step] = min(first.get(record.step, record.started), record.started)
        steps = sorted(groups[path], key=lambda r: (first[r.step], r.step, r.item or 0, r.started))
        rows = [_step_row(record, failures) for record in steps]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        teams = sorted(children.get(path, []), key=first_start)
        last = len(rows) + len(teams) - 1
        for index, row in enumerate(rows):
            cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
            text = "  ".join([*cells, *row[4:]]).rstrip()
            yield f"{prefix}{'└── ' if index == last else '├── '}{text}"
        for index, team in enumerate(teams, len(rows)):
            yield f"{prefix}{'└── ' if index == last else '├── '}{team[len(path) + 1 :]}"
            yield from entries(team, prefix + ("    " if index == last else "│   "))

    for root in sorted(children.get(None, []), key=first_start):
        yield f"  {root}"
        yield from entries(root, "  ")


def _step_row(record: StepRecord, failures: Sequence[FailureRecord]) -> list[str]:
    label = record.step if record.item is None else f"{record.step}[{record.item}]"
    agent = _relative(record.agent, record.supervisor) if record.agent else "-"
    attempts = f"{record.attempts} attempt{'' if record.attempts == 1 else 's'}"
    row = [label, record.status.value, agent, attempts, _seconds(record.duration)]
    if record.runs > 1:
        row.append(f"{record.runs} runs")
    if record.review is not None:
        row.append(f"review {record.review}")
    if record.resumed:
        row.append("resumed from a checkpoint")
    if record.agent is not None and record.item is None:
        failed: dict[str, int] = {}
        for failure in failures:
            if (
                failure.step == record.step
                and failure.path.rpartition("/")[0] == record.supervisor
                and failure.path != record.agent
            ):
                name = _relative(failure.path, record.supervisor)
                failed[name] = failed.get(name, 0) + 1
        if failed:
            row.append(
                "reassigned from "
                + ", ".join(f"{name} ({count} failed)" for name, count in failed.items())
            )
    return row


def _render_failure(number: int, failure: FailureRecord, verbose: bool) -> Iterator[str]:
    where = [failure.layer]
    if failure.step is not None:
        where.append(f"step {failure.step}")
    where.append(f"attempt {failure.attempt}")
    where.append(f"at {_seconds(failure.at)}")
    yield f"  {number}. {failure.path}  ({', '.join(where)})"
    message = failure.message
    if message.startswith(f"{failure.path}: "):
        message = message[len(failure.path) + 2 :]
    yield f"     {failure.error_type}: {message}"
    if verbose and failure.traceback:
        for line in failure.traceback.rstrip("\n").splitlines():
            yield f"     | {line}"


def _render_output(output: Any) -> Iterator[str]:
    lines = _pretty(output).splitlines() or [""]
    for line in lines[:OUTPUT_LINES]:
        yield "  " + (line if len(line) <= OUTPUT_WIDTH else line[: OUTPUT_WIDTH - 1] + "…")
    if len(lines) > OUTPUT_LINES:
        more = len(lines) - OUTPUT_LINES
        yield f"  … {more} more line{'' if more == 1 else 's'} (--json prints everything)"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def _relative(path: str, base: str) -> str:
    return path[len(base) + 1 :] if path.startswith(base + "/") else path


def _seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)} min {seconds:.0f} s"


def _outcome_json(outcome: Outcome) -> str:
    return json.dumps(converter.unstructure(outcome), indent=2, ensure_ascii=False, default=repr)
