"""The dispatcher: resume what the journal holds, run queued goals by priority, record
each step's checkpoint and each goal's end.

The second layer of :class:`overstory.daemon._service.Daemon`, under its API verbs.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from functools import partial
from typing import Any

import attrs
import trio

from overstory._text import scrub
from overstory.daemon import _store as store
from overstory.daemon._config import Config
from overstory.daemon._journal import JournalError
from overstory.daemon._metrics import Metrics
from overstory.daemon._models import AttemptView, EventView, GoalStatus
from overstory.daemon._parking import _Reviews
from overstory.daemon._retention import keep_for
from overstory.hierarchy._handle import GoalHandle
from overstory.hierarchy._outcome import Outcome, Status
from overstory.hierarchy._runner import Runner
from overstory.hierarchy._serde import converter

logger = logging.getLogger("overstory.daemon")

_STATUS = {
    Status.SUCCEEDED: GoalStatus.SUCCEEDED,
    Status.FAILED: GoalStatus.FAILED,
    Status.CANCELLED: GoalStatus.CANCELLED,
    Status.TIMED_OUT: GoalStatus.TIMED_OUT,
    Status.BUDGET_EXHAUSTED: GoalStatus.BUDGET_EXHAUSTED,
}


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


class _Dispatcher(_Reviews):
    """Runs queued goals in at most ``config.max_concurrent`` slots."""

    # Set by Daemon.__init__; declared here for the type checker.
    config: Config
    metrics: Metrics
    runner: Runner | None
    accepting: bool
    draining: bool
    _live: dict[str, _Live]
    _queue: list[tuple[int, int, str]]
    _queued: int
    _running: int
    _wake: trio.Event
    _changed: trio.Event
    _nursery: trio.Nursery | None

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
            retaining = trio.CancelScope()
            if self.config.retention is not None:
                nursery.start_soon(self._retain, self.config.retention, retaining)
            task_status.started()
            await self._dispatch()
            retaining.cancel()
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

    async def _retain(self, retention: float, scope: trio.CancelScope) -> None:
        with scope:
            await keep_for(self.journal, retention, on_purged=self._purged)

    def _purged(self, count: int) -> None:
        self.metrics.purged += count
        logger.info(
            "journal: deleted %d goals that ended over %g s ago", count, self.config.retention
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
        """Record the goal's end.

        When the record cannot be made for this goal's own sake (an outcome that is not
        JSON, a value SQLite refuses), the goal is recorded as failed with the reason
        instead: raising would stop the daemon, and the goal, resumed at the next start,
        would stop it again. :class:`JournalError` (the journal itself failing)
        propagates and stops the daemon; the goal resumes when it starts again.
        """
        try:
            text = json.dumps(converter.unstructure(outcome)) if outcome is not None else None
            await self._record_end(live, status, text, error, actor)
        except JournalError:
            raise
        except Exception as exc:
            logger.exception(
                "goal %s: could not record its end (%s); recording it as failed",
                live.row.id,
                status.value,
            )
            reason = f"the daemon could not record this goal's end ({status.value}): {exc!r}"
            await self._record_end(live, GoalStatus.FAILED, None, reason, "daemon")

    async def _record_end(
        self,
        live: _Live,
        status: GoalStatus,
        outcome: str | None,
        error: str | None,
        actor: str,
    ) -> None:
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
                # A leaf's error message may hold a lone surrogate, which SQLite refuses.
                error=None if error is None else scrub(error),
                outcome=outcome,
                actor=actor,
            ),
            on_commit=committed,
        )


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
