"""Retention: a finished goal leaves the journal ``retention`` seconds after it ended,
with everything of its own; unfinished goals never do; the WAL file is cut back."""

from __future__ import annotations

import argparse
import re
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from test_daemon_journal import _accept
from test_daemon_service import ADMIN, Gate, running

from overstory.daemon import _journal, _retention
from overstory.daemon import _store as store
from overstory.daemon._cli import retention
from overstory.daemon._config import DEFAULT_RETENTION, Config
from overstory.daemon._journal import Journal
from overstory.daemon._models import GoalStatus, SubmitGoal
from overstory.hierarchy import ReviewRequest


async def _goal(journal: Journal, goal_id: str, *, finished_at: float | None) -> None:
    """Accept a goal with a checkpoint and a review; finish it at ``finished_at``."""
    await _accept(journal, goal_id, key=f"key-{goal_id}")
    await journal.write(partial(store.checkpoint, goal_id=goal_id, key="t/a#s", output="1", at=0.0))
    request = ReviewRequest(
        goal_id=goal_id, goal="g", path="t/a", step="s", agent="x", output=1, round=1, key="k"
    )
    await journal.write(partial(store.open_review, request=request, output="1", at=0.0))
    if finished_at is not None:
        await journal.write(
            partial(
                store.finish,
                goal_id=goal_id,
                status=GoalStatus.SUCCEEDED,
                at=finished_at,
                error=None,
                outcome="{}",
                actor="daemon",
            )
        )


def _insert_meta(c: sqlite3.Connection, *, key: str) -> None:
    c.execute("INSERT INTO meta (key, value) VALUES (?, 'v')", (key,))


def _size(path: Path) -> int:
    return path.stat().st_size


def _rows(c: sqlite3.Connection) -> dict[str, list[str]]:
    """Which goals each table still holds rows for."""
    return {
        table: sorted(
            {
                goal_id
                for (goal_id,) in c.execute(f"SELECT goal_id FROM {table}")
                if goal_id is not None
            }
        )
        for table in ("checkpoints", "reviews", "events")
    } | {"goals": sorted(i for (i,) in c.execute("SELECT id FROM goals"))}


async def test_purge_deletes_goals_that_ended_before_the_cutoff_with_all_of_theirs(
    journal: Journal,
) -> None:
    """Goals that ended before the cutoff go with their checkpoints, reviews and events;
    a goal that ended later, and one that never ended, stay whole."""
    await _goal(journal, "old", finished_at=100.0)
    await _goal(journal, "recent", finished_at=300.0)
    await _goal(journal, "running", finished_at=None)
    assert await journal.write(partial(store.purge, before=200.0, limit=10)) == 1
    kept = ["recent", "running"]
    assert await journal.read(_rows) == {
        "checkpoints": kept,
        "reviews": kept,
        "events": kept,
        "goals": kept,
    }
    assert await journal.read(partial(store.find_by_key, key="key-old")) is None


async def test_purge_takes_the_oldest_first_and_at_most_limit(journal: Journal) -> None:
    """With more expired goals than ``limit``, the ones that ended first go first."""
    for number, finished_at in enumerate((30.0, 10.0, 20.0)):
        await _goal(journal, f"g{number}", finished_at=finished_at)
    assert await journal.write(partial(store.purge, before=100.0, limit=2)) == 2
    assert (await journal.read(_rows))["goals"] == ["g0"]


def _statements(c: sqlite3.Connection, op: Callable[[sqlite3.Connection], object]) -> set[str]:
    """The statements ``op`` runs on ``c``, with every value written as ``?``: the trace
    shows statements with their bound values filled in."""
    seen: set[str] = set()
    c.set_trace_callback(lambda sql: seen.add(re.sub(r"'[^']*'|\b[0-9.]+\b", "?", sql)))
    try:
        op(c)
    finally:
        c.set_trace_callback(None)
    return seen


async def test_purge_runs_the_same_statements_whatever_the_batch_size(journal: Journal) -> None:
    """A purge of one goal and a purge of three prepare the same statements, so the
    connection's statement cache does not fill with one statement per batch size."""
    for number in range(4):
        await _goal(journal, f"g{number}", finished_at=float(number))
    one = await journal.write(partial(_statements, op=partial(store.purge, before=100.0, limit=1)))
    three = await journal.write(
        partial(_statements, op=partial(store.purge, before=100.0, limit=3))
    )
    assert (await journal.read(_rows))["goals"] == []
    assert one == three


async def test_expire_runs_batch_after_batch_and_drops_old_daemon_events(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """expire() deletes every expired goal however many batches it takes, and the
    daemon's own events older than the cutoff, but not newer ones."""
    monkeypatch.setattr(_retention, "PURGE_BATCH", 2)
    for number in range(5):
        await _goal(journal, f"g{number}", finished_at=float(number))
    for at in (1.0, 99.0):
        await journal.write(
            partial(store.event, at=at, goal_id=None, kind="daemon.started", actor="d", data={})
        )
    assert await _retention.expire(journal, before=50.0) == 5
    assert (await journal.read(_rows))["goals"] == []
    left = await journal.read(lambda c: c.execute("SELECT at FROM events").fetchall())
    assert left == [(99.0,)]


async def test_keep_for_deletes_a_goal_once_it_has_been_over_for_retention(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With retention 10 s, passes while a goal has been over for 5 s keep it; once it
    has been over for 12 s the next pass deletes it; a goal that never ends stays."""
    # synchronous=normal writes on the event loop's thread, so a pass takes no mock time;
    # with "full" the clock would jump while each write waits for its worker thread.
    journal = Journal.open(tmp_path / "journal.sqlite3", tree="t", synchronous="normal")
    now = [5.0]
    purged: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await _goal(journal, "over", finished_at=0.0)
        await _goal(journal, "running", finished_at=None)
        nursery.start_soon(
            partial(
                _retention.keep_for,
                journal,
                10.0,
                on_purged=purged.append,
                wall=lambda: now[0],
            )
        )
        await trio.sleep(30.0)  # a dozen passes (one every 2.5 s)
        assert (await journal.read(_rows))["goals"] == ["over", "running"]
        assert purged == []
        now[0] = 12.0
        for _ in range(100):  # bounded: the test fails rather than hangs
            if purged:
                break
            await trio.sleep(1.0)
        assert purged == [1]
        assert (await journal.read(_rows))["goals"] == ["running"]
        nursery.cancel_scope.cancel()
    journal.close()


async def test_a_daemon_forgets_a_finished_goal_after_its_retention(tmp_path: Path) -> None:
    """The daemon's retention task deletes a goal once it ended longer ago than
    ``retention``; the deletion is counted in the metrics."""
    gate = Gate()
    gate.open.set()
    async with running(gate.tree, tmp_path, retention=1e-3) as daemon:
        _, goal = await daemon.submit(SubmitGoal(goal="brief"), ADMIN)
        for _ in range(500):  # bounded: the test fails rather than hangs
            if await daemon.goal(goal.id) is None:
                break
            await trio.sleep(0.01)
        assert await daemon.goal(goal.id) is None
        assert daemon.metrics.purged == 1


async def test_the_wal_file_is_cut_back_when_it_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under continuous writes the WAL grows past WAL_SIZE_LIMIT, and once SQLite starts
    it afresh the file is cut back to the limit instead of keeping its largest size."""
    monkeypatch.setattr(_journal, "CHECKPOINT_DELAY", 0.001)
    monkeypatch.setattr(_journal, "RESTART_FRAMES", 1)
    monkeypatch.setattr(_journal, "WAL_SIZE_LIMIT", 64 * 1024)
    path = tmp_path / "journal.sqlite3"
    wal = Path(f"{path}-wal")
    journal = Journal.open(path, tree="t", synchronous="normal")
    largest = 0
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            # One transaction of about 1 MiB grows the WAL far past the limit.
            await journal.write(
                lambda c: c.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [(f"k{n}", "x" * 4096) for n in range(256)],
                )
            )
            largest = _size(wal)
            for number in range(1000):  # bounded: the test fails rather than hangs
                await journal.write(
                    partial(_insert_meta, key=f"small{number}"),
                )
                if _size(wal) < largest // 4:
                    break
                await trio.sleep(0.001)
            journal.stop()
        assert largest > 1_000_000
        assert _size(wal) <= 64 * 1024 + 16 * 4096  # the limit, plus a few commits
    finally:
        journal.close()


def test_retention_is_a_duration_or_forever() -> None:
    """--retention reads 7d, 12h, 30m and 90s as seconds and 'forever' as no limit;
    anything else is refused with a message saying what is expected."""
    assert [retention(t) for t in ("7d", "12h", "30m", "90s", "1.5h", "forever")] == [
        604800.0,
        43200.0,
        1800.0,
        90.0,
        5400.0,
        None,
    ]
    for bad in ("", "7", "0d", "-1h", "7w", "soon", "infd"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive duration such as 7d"):
            retention(bad)


def test_config_retention_defaults_to_a_week_and_must_be_positive(tmp_path: Path) -> None:
    """Config keeps finished goals a week by default, forever with None, and refuses a
    retention that is not a positive number of seconds."""
    assert Config(state_dir=tmp_path).retention == DEFAULT_RETENTION == 7 * 86400
    assert Config(state_dir=tmp_path, retention=None).retention is None
    with pytest.raises(ValueError, match=r"Config\.retention must be a positive number"):
        Config(state_dir=tmp_path, retention=0)
