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

Reviews park the goal: the reviewer commits a pending review and waits for a decision.
A decision is committed before the goal is woken, so a restart in between resumes the
goal, which asks again with the same (goal, key, round) and gets the stored decision.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import attrs
import trio

from overstory.daemon import _store as store
from overstory.daemon._auth import Identity
from overstory.daemon._config import Config
from overstory.daemon._journal import Journal, JournalError
from overstory.daemon._metrics import Metrics
from overstory.daemon._models import (
    AttemptView,
    EventView,
    GoalDetail,
    GoalStatus,
    GoalSummary,
    NodeView,
    ReviewStatus,
    ReviewView,
    StepDone,
    SubmitGoal,
    TreeView,
)
from overstory.daemon._progress import ProgressInstrumentation
from overstory.hierarchy._outcome import Outcome, Status
from overstory.hierarchy._review import Approve, Decision, Edit, Reject, ReviewRequest
from overstory.hierarchy._runner import GoalHandle, Runner
from overstory.hierarchy._serde import converter
from overstory.supervisors._events import SupervisionEvent
from overstory.telemetry._hooks import Instrumentation

__all__ = ["Busy", "Daemon", "Draining", "Mismatch"]

logger = logging.getLogger("overstory.daemon")

#: How many events a slow follower may fall behind before its stream is closed.
SUBSCRIBER_BUFFER = 1024

_STATUS = {
    Status.SUCCEEDED: GoalStatus.SUCCEEDED,
    Status.FAILED: GoalStatus.FAILED,
    Status.CANCELLED: GoalStatus.CANCELLED,
    Status.TIMED_OUT: GoalStatus.TIMED_OUT,
    Status.BUDGET_EXHAUSTED: GoalStatus.BUDGET_EXHAUSTED,
}


class Busy(Exception):
    """The queue is full; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class Draining(Exception):
    """The daemon is shutting down and takes no new goals."""


class Mismatch(Exception):
    """An idempotency key reused for a different goal."""


@attrs.define(eq=False)
class _Live:
    """A goal accepted and not finished: queued, or running in this process."""

    row: store.GoalRow
    status: GoalStatus
    input: Any
    started_at: float | None
    memory: dict[str, Any] | None = None
    handle: GoalHandle | None = None
    cancel_by: str | None = None
    interrupted: bool = False
    attempts: dict[object, AttemptView] = attrs.field(factory=dict)


@attrs.define(eq=False)
class _Parked:
    """A review some goal waits on."""

    decided: trio.Event = attrs.field(factory=trio.Event)
    decision: Decision | None = None


class Daemon:
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

    # -- running ---------------------------------------------------------------------------

    async def run(
        self, runner: Runner, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Resume what the journal holds, then run goals until :meth:`stop`; then give the
        running ones ``config.grace`` seconds and cancel the rest, leaving them resumable."""
        self.runner = runner
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._resume()
            self.accepting = True
            self._log(None, "daemon.started", "daemon", {"resumed": self._queued})
            task_status.started()
            await self._dispatch()
            with trio.move_on_after(self.config.grace):
                while self._running:
                    await self._wait_changed()
            interrupted = [live for live in self._live.values() if live.handle is not None]
            for live in interrupted:
                live.interrupted = True
                live.handle.cancel()  # type: ignore[union-attr]
            self._log(
                None,
                "daemon.stopping",
                "daemon",
                {"interrupted": sorted(live.row.id for live in interrupted)},
            )

    def stop(self) -> None:
        """Stop intake (submit answers 503) and start draining; idempotent."""
        self.accepting = False
        self.draining = True
        self._wake.set()

    async def _wait_changed(self) -> None:
        self._changed = trio.Event()
        await self._changed.wait()

    def _notify(self) -> None:
        self._wake.set()
        self._changed.set()

    async def _resume(self) -> None:
        rows = await self.journal.read(store.unfinished)
        for row in rows:
            live = _Live(
                row=row,
                status=GoalStatus.QUEUED,
                input=json.loads(row.input),
                started_at=row.started_at,
            )
            if row.cancel_requested_by is not None:
                await self._finish(
                    live,
                    GoalStatus.CANCELLED,
                    None,
                    f"cancelled by {row.cancel_requested_by}",
                    row.cancel_requested_by,
                )
                continue
            self._enqueue(live)
        if rows:
            logger.info("resuming %d unfinished goals", self._queued)

    def _enqueue(self, live: _Live) -> None:
        self._live[live.row.id] = live
        heapq.heappush(self._queue, (-live.row.priority, live.row.seq, live.row.id))
        self._queued += 1
        if self._running < self.config.max_concurrent:
            self._wake.set()  # a slot is free; otherwise the next goal to end wakes it

    async def _dispatch(self) -> None:
        assert self._nursery is not None
        while not self.draining:
            while self._queue and self._running < self.config.max_concurrent:
                _, _, goal_id = heapq.heappop(self._queue)
                live = self._live.get(goal_id)
                if live is None or live.status is not GoalStatus.QUEUED:
                    continue  # cancelled while queued
                self._queued -= 1
                self._running += 1
                live.status = GoalStatus.RUNNING
                self._nursery.start_soon(self._run_goal, live, name=f"daemon goal {goal_id}")
            self._wake = trio.Event()
            await self._wake.wait()

    async def _run_goal(self, live: _Live) -> None:
        try:
            await self._run_goal_inner(live)
        finally:
            self._running -= 1
            self._notify()

    async def _run_goal_inner(self, live: _Live) -> None:
        assert self.runner is not None
        row = live.row
        resumed = row.started_at is not None
        checkpoints: dict[str, Any] = {}
        memory: dict[str, Any] | None = None
        if resumed:
            stored = await self.journal.read(partial(_resume_state, goal_id=row.id))
            checkpoints, memory = stored
        if live.cancel_by is not None:  # cancelled while it was starting
            await self._finish(
                live, GoalStatus.CANCELLED, None, f"cancelled by {live.cancel_by}", live.cancel_by
            )
            return
        if self.draining:
            return  # left queued or running in the journal: the next start resumes it
        now = time.time()
        timeout = row.timeout
        if timeout is not None and live.started_at is not None:
            timeout = live.started_at + timeout - now
            if timeout <= 0:
                await self._finish(
                    live, GoalStatus.TIMED_OUT, None, f"timed out after {row.timeout:g} s", "daemon"
                )
                return
        live.started_at = live.started_at or now
        self._log_started(live, first=not resumed, resumed_steps=len(checkpoints))
        handle = await self.runner.submit(
            row.goal,
            input=live.input,
            timeout=timeout,
            goal_id=row.id,
            memory=memory,
            checkpoints=checkpoints,
            on_checkpoint=partial(self._checkpoint, live),
        )
        live.handle = handle
        outcome = await handle.outcome()
        if live.interrupted and live.cancel_by is None and outcome.status is Status.CANCELLED:
            live.handle = None
            live.attempts.clear()
            return  # shutdown: leave it running in the journal, to resume next start
        status = _STATUS[outcome.status]
        error = outcome.error
        if status is GoalStatus.CANCELLED:
            error = f"cancelled by {live.cancel_by or 'daemon'}"
        elif status is GoalStatus.TIMED_OUT and error is None:
            error = f"timed out after {row.timeout:g} s"
        await self._finish(live, status, outcome, error, live.cancel_by or "daemon")

    def _log_started(self, live: _Live, *, first: bool, resumed_steps: int) -> None:
        assert live.started_at is not None
        self.journal.append(
            partial(
                store.started,
                goal_id=live.row.id,
                at=live.started_at,
                first=first,
                resumed_steps=resumed_steps,
            ),
            on_commit=self._broadcast,
        )

    async def _checkpoint(self, live: _Live, key: str, output: Any) -> None:
        try:
            text = json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"the output of step {key} is not JSON-serialisable, so the daemon cannot "
                f"checkpoint it: {exc}"
            ) from None
        memory = json.dumps(live.handle.memory()) if live.handle is not None else None
        await self.journal.write(
            partial(
                _checkpoint,
                goal_id=live.row.id,
                key=key,
                output=text,
                memory=memory,
                at=time.time(),
            ),
            on_commit=self._broadcast,
        )

    async def _finish(
        self,
        live: _Live,
        status: GoalStatus,
        outcome: Outcome | None,
        error: str | None,
        actor: str,
    ) -> None:
        text = json.dumps(converter.unstructure(outcome)) if outcome is not None else None

        def committed(events: list[EventView]) -> None:
            self._live.pop(live.row.id, None)
            live.status = status
            self.metrics.finished[status.value] += 1
            for event in events:
                self._broadcast(event)
            for send in self._followers.pop(live.row.id, set()):
                send.close()

        await self.journal.write(
            partial(
                store.finish,
                goal_id=live.row.id,
                status=status,
                at=time.time(),
                error=error,
                outcome=text,
                actor=actor,
            ),
            on_commit=committed,
        )

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
            and json.loads(row.input) == request.input
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

    # -- reviews ---------------------------------------------------------------------------

    async def review(self, request: ReviewRequest) -> Decision:
        """The tree's reviewer: park the goal until a decision is committed."""
        try:
            output = json.dumps(request.output)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the output under review is not JSON-serialisable: {exc}") from None
        review, _ = await self.journal.write(
            partial(store.open_review, request=request, output=output, at=time.time()),
            on_commit=self._review_opened,
        )
        if review.status is not ReviewStatus.PENDING:
            self._log(
                request.goal_id,
                "review.replayed",
                "daemon",
                {"review": review.id, "decision": review.status.value},
            )
            return _decision(review)
        parked = self._parked.setdefault(review.id, _Parked())
        try:
            await parked.decided.wait()
        finally:
            if self._parked.get(review.id) is parked:
                del self._parked[review.id]
        assert parked.decision is not None
        return parked.decision

    def _review_opened(self, result: tuple[ReviewView, EventView | None]) -> None:
        review, event = result
        if review.status is ReviewStatus.PENDING:
            self._parked.setdefault(review.id, _Parked())
        if event is not None:
            self._broadcast(event)

    async def decide(self, review_id: int, decision: Decision, who: Identity) -> ReviewView:
        """Commit a decision on a pending review, then wake the goal waiting on it.
        Raises :class:`store.NotFound` or :class:`store.Conflict` (not pending)."""
        if isinstance(decision, Reject):
            status, text = ReviewStatus.REJECTED, decision.feedback
        elif isinstance(decision, Edit):
            status, text = ReviewStatus.EDITED, json.dumps(decision.output)
        else:
            status, text = ReviewStatus.APPROVED, None

        def committed(result: tuple[ReviewView, EventView]) -> None:
            review, event = result
            parked = self._parked.pop(review.id, None)
            if parked is not None:
                parked.decision = decision
                parked.decided.set()
            self._broadcast(event)

        review, _ = await self.journal.write(
            partial(
                store.decide_review,
                review_id=review_id,
                status=status,
                decision=text,
                actor=who.role.value,
                token=who.token,
                at=time.time(),
            ),
            on_commit=committed,
        )
        return review

    async def reviews(
        self, *, status: ReviewStatus | None, goal_id: str | None, limit: int
    ) -> list[ReviewView]:
        return await self.journal.read(
            partial(store.list_reviews, status=status, goal_id=goal_id, limit=limit)
        )

    async def get_review(self, review_id: int) -> ReviewView | None:
        return await self.journal.read(partial(store.get_review, review_id=review_id))

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

    async def events(
        self, *, goal_id: str | None, kind: str | None, after: int, limit: int
    ) -> list[EventView]:
        return await self.journal.read(
            partial(store.events, goal_id=goal_id, kind=kind, after=after, limit=limit)
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

    @contextmanager
    def follow(self, goal_id: str) -> Iterator[trio.MemoryReceiveChannel[EventView | None]]:
        """A channel of the goal's events committed from now on; closed when the goal
        ends. ``None`` in it means the follower fell behind and must re-read."""
        send, receive = trio.open_memory_channel[EventView | None](SUBSCRIBER_BUFFER)
        followers = self._followers.setdefault(goal_id, set())
        followers.add(send)
        try:
            yield receive
        finally:
            followers.discard(send)
            if not followers and self._followers.get(goal_id) is followers:
                del self._followers[goal_id]
            send.close()
            receive.close()

    def gauges(self) -> dict[str, tuple[str, float]]:
        return {
            "overstory_goals_queued": ("Goals accepted and waiting for a slot.", self._queued),
            "overstory_goals_running": ("Goals running now.", self._running),
            "overstory_reviews_parked": ("Goals parked waiting for a review.", len(self._parked)),
            "overstory_accepting": ("1 while submissions are accepted.", int(self.accepting)),
        }

    # -- the audit log ---------------------------------------------------------------------

    def _log(self, goal_id: str | None, kind: str, actor: str, data: dict[str, Any]) -> None:
        self.journal.append(
            partial(
                store.event, at=time.time(), goal_id=goal_id, kind=kind, actor=actor, data=data
            ),
            on_commit=self._broadcast,
        )

    def _broadcast(self, event: EventView) -> None:
        if event.goal_id is None:
            return
        for send in list(self._followers.get(event.goal_id, ())):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                self._followers[event.goal_id].discard(send)
                send.close()
            except trio.ClosedResourceError:
                self._followers[event.goal_id].discard(send)


def _decision(review: ReviewView) -> Decision:
    if review.status is ReviewStatus.REJECTED:
        return Reject(feedback=review.reason or "")
    if review.status is ReviewStatus.EDITED:
        return Edit(output=review.edited_output)
    return Approve()


def _checkpoint(
    c: Any, *, goal_id: str, key: str, output: str, memory: str | None, at: float
) -> EventView:
    if memory is not None:
        c.execute("UPDATE goals SET memory = ? WHERE id = ?", (memory, goal_id))
    return store.checkpoint(c, goal_id=goal_id, key=key, output=output, at=at)


def _resume_state(c: Any, *, goal_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    checkpoints = {key: json.loads(output) for key, _, output in store.checkpoints(c, goal_id)}
    (memory,) = c.execute("SELECT memory FROM goals WHERE id = ?", (goal_id,)).fetchone()
    return checkpoints, json.loads(memory) if memory is not None else None


def _goal_detail(
    c: Any, *, goal_id: str
) -> tuple[store.GoalRow, list[tuple[str, float, str]], list[int]] | None:
    row = store.get_goal(c, goal_id)
    if row is None:
        return None
    return row, store.checkpoints(c, goal_id), store.pending_review_ids(c, goal_id)


def _spans_of(path: Any, goal_id: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as file:
            records = [json.loads(line) for line in file if line.strip()]
    except FileNotFoundError:
        return []
    traces = {
        record["trace_id"]
        for record in records
        if record.get("attributes", {}).get("gen_ai.conversation.id") == goal_id
    }
    return [record for record in records if record["trace_id"] in traces]
