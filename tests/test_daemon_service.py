"""The daemon's core in-process: queue order, back-pressure, drain, cancel, resume."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

import overstory as ov
from overstory.daemon import _store as store
from overstory.daemon._auth import Identity, Role
from overstory.daemon._config import Config
from overstory.daemon._journal import Journal
from overstory.daemon._models import GoalStatus, SubmitGoal
from overstory.daemon._service import Busy, Daemon, Draining, Mismatch

ADMIN = Identity(Role.ADMIN, "00000000")


class Gate:
    """A tree whose only leaf waits until the test opens the gate; records start order."""

    def __init__(self) -> None:
        self.open = trio.Event()
        self.started: list[str] = []
        self._changed = trio.Event()

        @ov.leaf
        async def wait(task: ov.Task, ctx: ov.Context) -> str:
            self.started.append(ctx.goal)
            self._changed.set()
            self._changed = trio.Event()
            await self.open.wait()
            return ctx.goal

        self.tree = ov.Tree("gate", ov.Tactical("team", children=[wait]))

    async def wait_started(self, count: int) -> None:
        with trio.fail_after(5):
            while len(self.started) < count:
                await self._changed.wait()


@asynccontextmanager
async def running(tree: ov.Tree, path: Path, **settings: Any) -> AsyncIterator[Daemon]:
    """A daemon for ``tree`` on the journal in ``path``, stopped (and drained) on exit."""
    config = Config(state_dir=path, grace=settings.pop("grace", 0), **settings)
    journal = Journal.open(config.journal_path, tree=tree.name)
    daemon = Daemon(tree=tree.name, journal=journal, config=config)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            async with (
                tree.running(reviewer=daemon.review, on_event=daemon.on_event) as runner,
                trio.open_nursery() as inner,
            ):
                await inner.start(daemon.run, runner)
                yield daemon
                daemon.stop()
            journal.stop()
    finally:
        journal.close()


async def _settle() -> None:
    for _ in range(50):
        await trio.lowlevel.checkpoint()
    await trio.sleep(0.05)


async def _wait_status(daemon: Daemon, goal_id: str, status: GoalStatus) -> None:
    with trio.fail_after(5):
        while True:
            goal = await daemon.goal(goal_id)
            assert goal is not None
            if goal.status is status:
                return
            await trio.sleep(0.01)


async def test_queued_goals_start_by_priority_then_age(tmp_path: Path) -> None:
    """With the only slot busy, waiting goals start highest priority first, then oldest."""
    gate = Gate()
    async with running(gate.tree, tmp_path, max_concurrent=1) as daemon:
        await daemon.submit(SubmitGoal(goal="first"), ADMIN)
        await _settle()
        for goal, priority in (("low", 0), ("high-1", 5), ("high-2", 5), ("top", 9)):
            await daemon.submit(SubmitGoal(goal=goal, priority=priority), ADMIN)
        gate.open.set()
        await gate.wait_started(5)
    assert gate.started == ["first", "top", "high-1", "high-2", "low"]


async def test_a_full_queue_refuses_new_goals_but_replays_known_keys(tmp_path: Path) -> None:
    """Past max_queue waiting goals, submit raises Busy; a known idempotency key still
    returns its goal; a reused key with another goal is a Mismatch."""
    gate = Gate()
    async with running(gate.tree, tmp_path, max_concurrent=1, max_queue=1) as daemon:
        await daemon.submit(SubmitGoal(goal="running"), ADMIN)
        await _settle()
        created, queued = await daemon.submit(SubmitGoal(goal="wait", idempotency_key="k"), ADMIN)
        assert created
        with pytest.raises(Busy) as busy:
            await daemon.submit(SubmitGoal(goal="one too many"), ADMIN)
        assert busy.value.retry_after == 1
        again, same = await daemon.submit(SubmitGoal(goal="wait", idempotency_key="k"), ADMIN)
        assert (again, same.id) == (False, queued.id)
        with pytest.raises(Mismatch):
            await daemon.submit(SubmitGoal(goal="other", idempotency_key="k"), ADMIN)
        gate.open.set()


async def test_after_stop_submissions_are_refused(tmp_path: Path) -> None:
    """Once draining, submit raises Draining and the daemon no longer accepts."""
    gate = Gate()
    gate.open.set()
    async with running(gate.tree, tmp_path) as daemon:
        daemon.stop()
        assert not daemon.accepting
        with pytest.raises(Draining):
            await daemon.submit(SubmitGoal(goal="late"), ADMIN)


async def test_cancelling_a_queued_goal_ends_it_without_running(tmp_path: Path) -> None:
    """A goal cancelled while it waits for a slot is cancelled at once and never starts."""
    gate = Gate()
    async with running(gate.tree, tmp_path, max_concurrent=1) as daemon:
        await daemon.submit(SubmitGoal(goal="running"), ADMIN)
        await _settle()
        _, queued = await daemon.submit(SubmitGoal(goal="waiting"), ADMIN)
        summary = await daemon.cancel(queued.id, Identity(Role.SUBMIT, "11111111"))
        assert summary.status is GoalStatus.CANCELLED
        assert summary.error == "cancelled by submit"
        gate.open.set()
        await _settle()
    assert gate.started == ["running"]


async def test_a_goal_past_its_deadline_at_restart_times_out_without_running(
    tmp_path: Path,
) -> None:
    """A resumed goal whose deadline (first start + timeout) passed while the daemon was
    down ends timed_out at once."""
    gate = Gate()
    journal = Journal.open(tmp_path / "journal.sqlite3", tree="gate")
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await journal.write(
            partial(
                store.accept,
                goal_id="old",
                goal="old",
                input="null",
                priority=0,
                timeout=10.0,
                idempotency_key=None,
                actor="admin",
                token="t",
                at=time.time() - 100,
            )
        )
        await journal.write(
            partial(store.started, goal_id="old", at=time.time() - 60, first=True, resumed_steps=0)
        )
        journal.stop()
    journal.close()
    async with running(gate.tree, tmp_path) as daemon:
        await _wait_status(daemon, "old", GoalStatus.TIMED_OUT)
        goal = await daemon.goal("old")
        assert goal is not None
        assert goal.error == "timed out after 10 s"
    assert gate.started == []


async def test_a_drained_goal_resumes_in_the_next_daemon(tmp_path: Path) -> None:
    """A goal cut off by shutdown stays running in the journal; the next daemon on the same
    journal resumes it under the same id and finishes it."""
    gate = Gate()
    async with running(gate.tree, tmp_path) as daemon:
        _, goal = await daemon.submit(SubmitGoal(goal="long"), ADMIN)
        await _settle()
    gate.open.set()
    async with running(gate.tree, tmp_path) as daemon:
        await _wait_status(daemon, goal.id, GoalStatus.SUCCEEDED)
        events = await daemon.events(goal_id=goal.id, kind="goal.", after=0, limit=100)
    assert [e.kind for e in events] == [
        "goal.accepted",
        "goal.started",
        "goal.resumed",
        "goal.finished",
    ]
    assert gate.started == ["long", "long"]


async def test_a_goal_whose_end_the_journal_refuses_fails_and_the_daemon_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When recording a goal's end raises for the goal's own sake, the goal is recorded
    failed with the reason instead, and the daemon keeps running goals."""
    real = store.finish
    refused: list[str] = []

    def finish(c: Any, **fields: Any) -> Any:
        if not refused:
            refused.append(fields["goal_id"])
            raise ValueError("this end cannot be stored")
        return real(c, **fields)

    monkeypatch.setattr(store, "finish", finish)
    gate = Gate()
    gate.open.set()
    async with running(gate.tree, tmp_path) as daemon:
        _, first = await daemon.submit(SubmitGoal(goal="first"), ADMIN)
        await _wait_status(daemon, first.id, GoalStatus.FAILED)
        _, second = await daemon.submit(SubmitGoal(goal="second"), ADMIN)
        await _wait_status(daemon, second.id, GoalStatus.SUCCEEDED)
        ended = await daemon.goal(first.id)
    assert refused == [first.id]
    assert ended is not None
    assert ended.error == (
        "the daemon could not record this goal's end (succeeded): "
        "ValueError('this end cannot be stored')"
    )
