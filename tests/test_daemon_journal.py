"""The journal: group commit, isolation of a failing write, and the store's rules, in
both ``synchronous`` settings; checkpoints and another process's lock."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from support import collector_off

from overstory.daemon import _journal
from overstory.daemon import _store as store
from overstory.daemon._journal import Journal, JournalError, SchemaMismatch
from overstory.daemon._models import GoalStatus, ReviewStatus
from overstory.hierarchy import ReviewRequest


def _accept(journal: Journal, goal_id: str, key: str | None = None) -> Any:
    return journal.write(
        partial(
            store.accept,
            goal_id=goal_id,
            goal="g",
            input="null",
            priority=0,
            timeout=None,
            idempotency_key=key,
            actor="admin",
            token="abcd1234",
            at=1.0,
        )
    )


async def test_concurrent_writes_share_transactions(journal: Journal) -> None:
    """Fifty writes queued at once commit in far fewer than fifty transactions."""
    results: dict[int, Any] = {}

    async def write(number: int) -> None:
        results[number] = await journal.write(lambda c: number * 2)

    async with trio.open_nursery() as nursery:
        for number in range(50):
            nursery.start_soon(write, number)
    assert results == {n: n * 2 for n in range(50)}
    assert journal.operations == 50
    assert journal.commits <= 5


async def test_a_failing_write_is_rolled_back_alone(journal: Journal) -> None:
    """A write that raises gets its exception; the writes batched with it still commit."""

    def bad(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO meta (key, value) VALUES ('half', 'done')")
        raise ValueError("boom")

    outcomes: list[object] = []

    async def attempt(op: Any) -> None:
        try:
            outcomes.append(await journal.write(op))
        except ValueError as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attempt, lambda c: c.execute("INSERT INTO meta VALUES ('a', '1')"))
        nursery.start_soon(attempt, bad)
        nursery.start_soon(attempt, lambda c: c.execute("INSERT INTO meta VALUES ('b', '2')"))
    assert sum(isinstance(o, ValueError) for o in outcomes) == 1
    keys = await journal.read(lambda c: [k for (k,) in c.execute("SELECT key FROM meta")])
    assert {"a", "b"} <= set(keys)
    assert "half" not in keys


async def test_a_failed_write_leaves_nothing_for_the_cycle_collector(journal: Journal) -> None:
    """A write or an append whose operation raises is freed by reference counting: its
    error's traceback does not keep the writer's batch alive until a full collection."""

    def bad(c: sqlite3.Connection) -> None:
        raise ValueError("boom")

    await journal.write(lambda c: None)  # the writer's first batch, outside the count
    with collector_off() as left:
        with pytest.raises(ValueError, match="boom"):
            await journal.write(bad)
        journal.append(bad)
        await journal.write(lambda c: None)  # after the append's batch
    assert left == []


async def test_a_failed_commit_fails_each_write_with_an_error_of_its_own(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the transaction itself fails, every write of the batch raises a JournalError
    naming the cause, each its own object (one raised in several tasks would collect all
    their frames in one traceback), and the journal goes on serving."""

    def broken(self: Journal, batch: list[Any]) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Journal, "_transaction", broken)
    errors: list[JournalError] = []

    async def attempt() -> None:
        try:
            await journal.write(lambda c: None)
        except JournalError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(attempt)
    assert [str(e) for e in errors] == [
        "the journal could not commit: database disk image is malformed"
    ] * 3
    assert len({id(e) for e in errors}) == 3
    monkeypatch.undo()
    assert await journal.write(lambda c: 7) == 7


async def test_on_commit_runs_even_when_the_caller_was_cancelled(journal: Journal) -> None:
    """A cancelled caller does not withdraw its write, and its on_commit still runs."""
    committed: list[int] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await journal.write(lambda c: 7, on_commit=committed.append)
    await journal.barrier()
    assert committed == [7]


async def test_normal_commits_on_the_loop_and_checkpoints_off_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With synchronous=normal the writer never checkpoints; a checkpoint follows writes."""
    monkeypatch.setattr(_journal, "CHECKPOINT_DELAY", 0.01)
    journal = Journal.open(tmp_path / "journal.sqlite3", tree="t", synchronous="normal")
    try:
        assert journal.synchronous == "normal"
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await _accept(journal, "g1")
            assert journal.checkpoints == 0
            for _ in range(1000):  # bounded: the test fails rather than hangs
                if journal.checkpoints:
                    break
                await trio.sleep(0.01)
            assert journal.checkpoints == 1
            journal.stop()
        assert journal._writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    finally:
        journal.close()


def _wal_restarts(path: Path) -> int:
    """How many times SQLite started the WAL afresh (its header's checkpoint sequence)."""
    header = Path(f"{path}-wal").read_bytes()[:16]
    return int.from_bytes(header[12:16], "big") if len(header) == 16 else 0


async def test_normal_reuses_the_wal_under_continuous_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a checkpoint finds the WAL big, the writer pauses for a catch-up checkpoint of
    its own (commits made during the first keep SQLite from reusing the WAL), and the WAL
    starts afresh."""
    monkeypatch.setattr(_journal, "CHECKPOINT_DELAY", 0.001)
    monkeypatch.setattr(_journal, "RESTART_FRAMES", 1)
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, tree="t", synchronous="normal")
    by: list[str] = []
    checkpoint = Journal._checkpoint

    def recorded(self: Journal, connection: sqlite3.Connection) -> int:
        by.append("writer" if connection is self._writer else "checkpointer")
        return checkpoint(self, connection)

    monkeypatch.setattr(Journal, "_checkpoint", recorded)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for number in range(1000):  # bounded: the test fails rather than hangs
                await _accept(journal, f"g{number}")
                if "writer" in by and _wal_restarts(path) >= 2:
                    break
            journal.stop()
        assert by[:2] == ["checkpointer", "writer"]
        assert _wal_restarts(path) >= 2
    finally:
        journal.close()


async def test_a_write_waits_off_the_loop_while_another_process_holds_the_lock(
    tmp_path: Path,
) -> None:
    """synchronous=normal: a write blocked by another connection's lock waits on a thread
    while the event loop runs on, and commits once the lock is released."""
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, tree="t", synchronous="normal")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            other.execute("BEGIN IMMEDIATE")
            done = trio.Event()

            async def write() -> None:
                await _accept(journal, "g1")
                done.set()

            nursery.start_soon(write)
            for _ in range(20):  # the loop keeps running while the write waits
                await trio.sleep(0.005)
            assert not done.is_set()
            other.execute("ROLLBACK")
            await done.wait()
            row = await journal.read(lambda c: store.get_goal(c, "g1"))
            assert row is not None
            journal.stop()
    finally:
        other.close()
        journal.close()


def test_a_journal_belongs_to_one_tree(tmp_path: Path) -> None:
    """Opening a state directory made for another tree fails, naming both trees."""
    Journal.open(tmp_path / "j.sqlite3", tree="first").close()
    with pytest.raises(SchemaMismatch, match="holds the goals of tree 'first', not 'second'"):
        Journal.open(tmp_path / "j.sqlite3", tree="second")


async def test_accept_returns_the_row_as_stored(journal: Journal) -> None:
    """The row accept builds without reading it back equals the stored row."""
    await _accept(journal, "g0")
    row, _ = await journal.write(
        partial(
            store.accept,
            goal_id="g1",
            goal="g",
            input='{"a": 1}',
            priority=3,
            timeout=2.5,
            idempotency_key="k",
            actor="submit",
            token="abcd1234",
            at=1.5,
        )
    )
    assert row == await journal.read(lambda c: store.get_goal(c, "g1"))
    assert row.seq == 2


async def test_an_idempotency_key_accepts_once(journal: Journal) -> None:
    """The second accept with a key returns the first goal and appends no event."""
    first, event = await _accept(journal, "g1", key="k")
    again, no_event = await _accept(journal, "g2", key="k")
    assert event is not None
    assert no_event is None
    assert again.id == first.id == "g1"
    assert await journal.read(lambda c: store.get_goal(c, "g2")) is None


async def test_a_goal_finishes_once(journal: Journal) -> None:
    """finish records the first final status; a second finish changes nothing."""
    await _accept(journal, "g1")
    finish = partial(store.finish, goal_id="g1", at=2.0, error=None, outcome=None, actor="daemon")
    events = await journal.write(partial(finish, status=GoalStatus.SUCCEEDED))
    assert [e.kind for e in events] == ["goal.finished"]
    assert await journal.write(partial(finish, status=GoalStatus.FAILED)) == []
    row = await journal.read(lambda c: store.get_goal(c, "g1"))
    assert row is not None
    assert row.status is GoalStatus.SUCCEEDED


async def test_a_review_is_decided_once_and_its_decision_is_kept(journal: Journal) -> None:
    """Opening the same (goal, key, round) again returns the stored review; deciding twice
    is a conflict; an unknown review is not found."""
    await _accept(journal, "g1")
    request = ReviewRequest(
        goal_id="g1", goal="g", path="t/a", step="s", agent="t/a/x", output=1, round=1, key="t/a#s"
    )
    review, event = await journal.write(
        partial(store.open_review, request=request, output="1", at=1)
    )
    assert event is not None
    decide = partial(
        store.decide_review,
        review_id=review.id,
        decision="shorter",
        actor="review",
        token="t",
        at=2,
    )
    decided, _ = await journal.write(partial(decide, status=ReviewStatus.REJECTED))
    assert (decided.status, decided.reason) == (ReviewStatus.REJECTED, "shorter")
    with pytest.raises(store.Conflict, match="is rejected, not pending"):
        await journal.write(partial(decide, status=ReviewStatus.APPROVED))
    with pytest.raises(store.NotFound):
        await journal.write(partial(decide, review_id=999, status=ReviewStatus.APPROVED))
    again, no_event = await journal.write(
        partial(store.open_review, request=request, output="2", at=3)
    )
    assert no_event is None
    assert (again.id, again.status, again.output) == (review.id, ReviewStatus.REJECTED, 1)


async def test_finishing_a_goal_voids_its_pending_reviews(journal: Journal) -> None:
    """A goal that ends leaves no review pending."""
    await _accept(journal, "g1")
    request = ReviewRequest(
        goal_id="g1", goal="g", path="t/a", step="s", agent="x", output=1, round=1, key="k"
    )
    await journal.write(partial(store.open_review, request=request, output="1", at=1))
    events = await journal.write(
        partial(
            store.finish,
            goal_id="g1",
            status=GoalStatus.CANCELLED,
            at=2,
            error=None,
            outcome=None,
            actor="submit",
        )
    )
    assert [e.kind for e in events] == ["review.void", "goal.finished"]
    pending = await journal.read(
        partial(store.list_reviews, status=ReviewStatus.PENDING, goal_id=None, limit=10)
    )
    assert pending == []


async def test_events_filter_by_kind_prefix_and_page_by_seq(journal: Journal) -> None:
    """events() returns seq order after ``after``; a kind ending in '.' is a prefix."""
    for kind in ("goal.accepted", "attempt.started", "goal.finished"):
        await journal.write(
            partial(store.event, at=1, goal_id="g", kind=kind, actor="daemon", data={})
        )
    goals = await journal.read(partial(store.events, kind="goal."))
    assert [e.kind for e in goals] == ["goal.accepted", "goal.finished"]
    later = await journal.read(partial(store.events, after=goals[0].seq, limit=1))
    assert [e.kind for e in later] == ["attempt.started"]
