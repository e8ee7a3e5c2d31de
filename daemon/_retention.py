"""Retention: the journal forgets a goal ``retention`` seconds after it ended.

A finished goal's row, checkpoints, reviews and audit events stay in the journal so
that ``GET /v1/goals/{id}``, the audit log and idempotency keys can answer for it. A
daemon that runs for weeks would grow its journal by every goal it ever ran (about
9 KB for a small two-team goal), so goals that ended longer ago than ``retention`` are
deleted, oldest first, :data:`PURGE_BATCH` per operation so that a submission never
waits long behind a purge in the writer's transaction. The daemon's own audit events
(starts and stops) expire the same way. Goals that have not ended are never deleted.

SQLite reuses the freed pages: once goals expire as fast as they arrive, the file
stops growing (it does not shrink; ``VACUUM`` on a stopped daemon's journal does that).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import trio

from overstory.daemon import _store as store
from overstory.daemon._journal import Journal, JournalError

__all__ = ["expire", "keep_for"]

#: Goals deleted per journal operation.
PURGE_BATCH = 100
#: The longest wait between two purges (shorter when ``retention`` is short).
PURGE_INTERVAL = 60.0


async def expire(journal: Journal, *, before: float) -> int:
    """Delete every goal that ended before ``before`` (seconds since the epoch), with
    its checkpoints, reviews and events, and the daemon's own events older than that;
    returns how many goals.

    Raises :class:`~overstory.daemon._journal.JournalError` when a transaction fails
    (what earlier ones deleted stays deleted). Cancellation stops between batches.
    """
    removed = 0
    while True:
        batch = await journal.write(partial(store.purge, before=before, limit=PURGE_BATCH))
        removed += batch
        if batch < PURGE_BATCH:
            break
    await journal.write(partial(store.purge_daemon_events, before=before))
    return removed


async def keep_for(
    journal: Journal,
    retention: float,
    *,
    on_purged: Callable[[int], None],
    wall: Callable[[], float] = time.time,
) -> None:
    """Expire what ended more than ``retention`` seconds ago, now and then every
    ``min(retention / 4, PURGE_INTERVAL)`` seconds, until cancelled; ``on_purged`` gets
    the number of goals each pass deleted, when any. ``wall`` is the clock that goals'
    ``finished_at`` was read from.

    A pass whose transaction fails is logged by the journal and retried at the next one.
    """
    interval = min(retention / 4, PURGE_INTERVAL)
    while True:
        try:
            removed = await expire(journal, before=wall() - retention)
        except JournalError:
            removed = 0
        if removed:
            on_purged(removed)
        await trio.sleep(interval)
