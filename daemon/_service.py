"""The daemon's core: accept goals durably, run them by priority, park them for review.

Life of a goal::

    submit ──commit──▶ queued ──slot──▶ running ──▶ succeeded | failed | cancelled | timed_out
                                                    | budget_exhausted
                          ▲                │
                          └── restart ─────┘  (checkpointed steps are not run again)

A goal is accepted once its row is committed; only then does the client get 202, and
the goal is queued by the commit itself (not by the request, which may be gone by then).
Each completed step's output is committed (with the goal's memory) before the runtime
hands it on. Every change appends an audit event in the same transaction.

Reviews park the goal (see :mod:`overstory.daemon._parking`); the dispatcher is in
:mod:`overstory.daemon._dispatch` and the audit log in :mod:`overstory.daemon._feed`.
:class:`Daemon` stacks them as base classes: feed, review parking, dispatcher, then the
API's verbs here.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any

import attrs
import trio

from overstory.daemon import _store as store
from overstory.daemon._auth import Identity
from overstory.daemon._config import Config
from overstory.daemon._dispatch import _Dispatcher, _Live
from overstory.daemon._journal import Journal, JournalError
from overstory.daemon._metrics import Metrics
from overstory.daemon._models import (
    AttemptView,
    EventView,
    GoalDetail,
    GoalStatus,
    GoalSummary,
    NodeView,
    StepDone,
    SubmitGoal,
    TreeView,
)
from overstory.daemon._parking import _Parked
from overstory.daemon._progress import ProgressInstrumentation
from overstory.hierarchy._runner import Runner
from overstory.supervisors._events import SupervisionEvent
from overstory.telemetry._hooks import Instrumentation

__all__ = ["Busy", "Daemon", "Draining", "Mismatch"]


class Busy(Exception):
    """The queue is full; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class Draining(Exception):
    """The daemon is shutting down and takes no new goals."""


class Mismatch(Exception):
    """An idempotency key reused for a different goal."""


class Daemon(_Dispatcher):
    """Runs one tree's goals durably; the HTTP API calls its methods."""

    def __init__(self, *, tree: str, journal: Journal, config: Config) -> None:
        self.tree = tree
        self.journal = journal
        self.config = config
        self.metrics = Metrics()
        self.runner: Runner | None = None
        self.accepting = False
        self.draining = False
        self._live: dict[str, _Live] = {}
        self._queue: list[tuple[int, int, str]] = []  # (-priority, seq, goal id)
        self._queued = 0
        self._running = 0
        self._accepting_now = 0  # submissions waiting for their commit
        self._wake = trio.Event()
        self._changed = trio.Event()
        self._parked: dict[int, _Parked] = {}
        self._followers: dict[str, set[trio.MemorySendChannel[EventView | None]]] = {}
        self._nursery: trio.Nursery | None = None
        #: The telemetry pipeline ``serve`` configured, if any (flushed before a trace
        #: is read back).
        self.telemetry: Any = None

    # -- wiring into Tree.running ----------------------------------------------------------

    def instrumentation(self, inner: Instrumentation) -> Instrumentation:
        """``inner`` wrapped to report attempts to the daemon (for live progress)."""
        return ProgressInstrumentation(inner, self)

    def on_event(self, event: SupervisionEvent) -> None:
        """The tree's supervision events, into the audit log."""
        self.metrics.supervision[event.kind.value] += 1
        data = {
            name: value
            for name, value in (
                ("path", event.path),
                ("step", event.step),
                ("attempt", event.attempt),
                ("agent", event.agent),
                ("next_agent", event.next_agent),
                ("delay", event.delay),
                ("error_type", event.error_type),
                ("message", event.message or None),
            )
            if value is not None
        }
        self._log(event.goal_id, f"supervision.{event.kind.value}", "tree", data)

    def attempt_started(
        self, *, token: object, goal_id: str, path: str, step: str | None, attempt: int
    ) -> None:
        live = self._live.get(goal_id)
        if live is None:
            return
        view = AttemptView(path=path, step=step, attempt=attempt, since=time.time())
        live.attempts[token] = view
        self._log(
            goal_id, "attempt.started", "tree", {"path": path, "step": step, "attempt": attempt}
        )

    def attempt_ended(
        self, *, token: object, goal_id: str, outcome: str, error: BaseException | None
    ) -> None:
        live = self._live.get(goal_id)
        view = live.attempts.pop(token, None) if live is not None else None
        if view is None:
            return
        data: dict[str, Any] = {
            "path": view.path,
            "step": view.step,
            "attempt": view.attempt,
            "outcome": outcome,
        }
        if error is not None:
            data["error"] = f"{type(error).__name__}: {error}"
        self._log(goal_id, "attempt.ended", "tree", data)

    # -- the API's verbs -------------------------------------------------------------------

    async def submit(self, request: SubmitGoal, who: Identity) -> tuple[bool, GoalSummary]:
        """Accept ``request`` durably. Returns ``(created, goal)``: ``created`` is false
        when the idempotency key names an earlier goal. Raises :class:`Draining`,
        :class:`Busy`, :class:`Mismatch` or :class:`JournalError`."""
        if not self.accepting:
            self.metrics.refused["draining"] += 1
            raise Draining("the daemon is shutting down and accepts no new goals")
        if self._queued + self._accepting_now >= self.config.max_queue:
            if request.idempotency_key is not None:
                row = await self.journal.read(
                    partial(store.find_by_key, key=request.idempotency_key)
                )
                if row is not None:
                    return False, self._replay(row, request)
            self.metrics.refused["busy"] += 1
            raise Busy(retry_after=1)
        began = trio.current_time()
        self._accepting_now += 1
        try:
            row, event = await self.journal.write(
                partial(
                    store.accept,
                    goal_id=uuid.uuid4().hex,
                    goal=request.goal,
                    input=json.dumps(request.input),
                    priority=request.priority,
                    timeout=request.timeout,
                    idempotency_key=request.idempotency_key,
                    actor=who.role.value,
                    token=who.token,
                    at=time.time(),
                ),
                on_commit=partial(self._accepted, request.input),
            )
        except JournalError:
            self.metrics.refused["journal"] += 1
            raise
        finally:
            self._accepting_now -= 1
        if event is None:
            return False, self._replay(row, request)
        self.metrics.accept_seconds.observe(trio.current_time() - began)
        return True, row.summary()

    def _accepted(self, input: Any, result: tuple[store.GoalRow, EventView | None]) -> None:
        row, event = result
        if event is None:
            return
        self.metrics.accepted += 1
        self._enqueue(_Live(row=row, status=GoalStatus.QUEUED, input=input, started_at=None))
        self._broadcast(event)

    def _replay(self, row: store.GoalRow, request: SubmitGoal) -> GoalSummary:
        same = (
            row.goal == request.goal
            # The same JSON, key order aside: Python's ``==`` takes true for 1 and 1.0 for 1.
            and _canonical(json.loads(row.input)) == _canonical(request.input)
            and row.priority == request.priority
            and row.timeout == request.timeout
        )
        if not same:
            raise Mismatch(
                f"idempotency key {request.idempotency_key!r} was used for goal {row.id} "
                "with a different goal, input, priority or timeout"
            )
        self.metrics.replayed += 1
        return self._summary(row)

    def _summary(self, row: store.GoalRow) -> GoalSummary:
        live = self._live.get(row.id)
        if live is None:
            return row.summary()
        return attrs.evolve(row.summary(live.status), started_at=live.started_at)

    async def goal(self, goal_id: str) -> GoalDetail | None:
        found = await self.journal.read(partial(_goal_detail, goal_id=goal_id))
        if found is None:
            return None
        row, steps, pending = found
        summary = self._summary(row)
        live = self._live.get(goal_id)
        return GoalDetail(
            **attrs.asdict(summary, recurse=False),
            input=json.loads(row.input),
            steps=[StepDone(key=k, at=at, output=json.loads(out)) for k, at, out in steps],
            running=list(live.attempts.values()) if live is not None else [],
            pending_reviews=pending,
            outcome=json.loads(row.outcome) if row.outcome is not None else None,
        )

    async def goals(
        self, *, status: GoalStatus | None, before: int | None, limit: int
    ) -> tuple[list[GoalSummary], int | None]:
        rows = await self.journal.read(
            partial(store.list_goals, status=status, before=before, limit=limit + 1)
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [self._summary(row) for row in rows], (rows[-1].seq if more else None)

    async def cancel(self, goal_id: str, who: Identity) -> GoalSummary:
        """Cancel an unfinished goal: at once when queued, else its running work.
        Raises :class:`store.NotFound` or :class:`store.Conflict` (already ended)."""
        live = self._live.get(goal_id)
        if live is not None and live.cancel_by is None:
            live.cancel_by = who.role.value
        try:
            await self.journal.write(
                partial(
                    store.request_cancel,
                    goal_id=goal_id,
                    actor=who.role.value,
                    token=who.token,
                    at=time.time(),
                ),
                on_commit=self._broadcast,
            )
        except BaseException:
            if live is not None and live.cancel_by == who.role.value:
                live.cancel_by = None
            raise
        live = self._live.get(goal_id)
        if live is not None:
            if live.handle is not None:
                live.handle.cancel()
            elif live.status is GoalStatus.QUEUED:
                live.status = GoalStatus.CANCELLED  # the dispatcher skips it
                self._queued -= 1
                actor = live.cancel_by or who.role.value
                await self._finish(live, GoalStatus.CANCELLED, None, f"cancelled by {actor}", actor)
            # else it is starting, and finishes itself as cancelled once it sees cancel_by
        row = await self.journal.read(partial(store.get_goal, goal_id=goal_id))
        assert row is not None
        return self._summary(row)

    # -- the tree, events and metrics ------------------------------------------------------

    async def tree_view(self) -> TreeView:
        pending = await self.journal.read(store.count_pending_reviews)
        nodes = self.runner.health() if self.runner is not None else ()
        return TreeView(
            tree=self.tree,
            accepting=self.accepting,
            goals_running=self._running,
            goals_queued=self._queued,
            reviews_pending=pending,
            nodes=[NodeView(**attrs.asdict(node)) for node in nodes],
        )

    async def trace(self, goal_id: str) -> list[dict[str, Any]] | None:
        """The recorded spans of every trace of the goal (one per run: a resumed goal has
        several), as JSON records; ``None`` when the daemon records no spans."""
        if not self.config.trace:
            return None
        if self.telemetry is not None:
            await self.telemetry.flush(5.0)
        return await trio.to_thread.run_sync(_spans_of, self.config.trace_path, goal_id)

    def is_live(self, goal_id: str) -> bool:
        return goal_id in self._live

    def gauges(self) -> dict[str, tuple[str, float]]:
        return {
            "overstory_goals_queued": ("Goals accepted and waiting for a slot.", self._queued),
            "overstory_goals_running": ("Goals running now.", self._running),
            "overstory_reviews_parked": ("Goals parked waiting for a review.", len(self._parked)),
            "overstory_accepting": ("1 while submissions are accepted.", int(self.accepting)),
        }


def _goal_detail(
    c: Any, *, goal_id: str
) -> tuple[store.GoalRow, list[tuple[str, float, str]], list[int]] | None:
    row = store.get_goal(c, goal_id)
    if row is None:
        return None
    return row, store.checkpoints(c, goal_id), store.pending_review_ids(c, goal_id)


def _spans_of(path: Path, goal_id: str) -> list[dict[str, Any]]:
    """The spans of every trace of ``goal_id`` in ``path`` and in the file rotated before
    it (``path.1``), each span once.

    The files hold every goal's spans (up to twice ``trace_limit``), so a line is parsed
    only if its text names the goal or one of the goal's traces, and no file is held in
    memory whole. A line still being written (no newline yet) is skipped.
    """
    files: list[IO[str]] = []
    with contextlib.ExitStack() as opened:
        # The current file first: a rotation between the two opens then shows one file
        # twice (each span is kept once) instead of skipping one.
        for candidate in (path, path.with_name(path.name + ".1")):
            with contextlib.suppress(FileNotFoundError):
                files.append(opened.enter_context(open(candidate, encoding="utf-8")))
        traces = {
            record["trace_id"]
            for record in _records_naming(files, (goal_id,))
            if record.get("attributes", {}).get("gen_ai.conversation.id") == goal_id
        }
        if not traces:
            return []
        for file in files:
            file.seek(0)
        spans: dict[tuple[str, str], dict[str, Any]] = {}
        for record in _records_naming(files, tuple(traces)):
            if record["trace_id"] in traces:
                spans.setdefault((record["trace_id"], record["span_id"]), record)
        return list(spans.values())


def _records_naming(files: list[IO[str]], texts: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for file in files:
        for line in file:
            if line.endswith("\n") and any(text in line for text in texts):
                yield json.loads(line)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
