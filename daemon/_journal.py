"""The daemon's journal: goals, checkpoints, reviews and the audit log in one SQLite file.

Writes are group-committed. Callers queue operations; one writer task runs everything
queued so far in one transaction on a worker thread and wakes each caller once the
transaction holding its operation has committed. With ``synchronous=FULL`` a commit is
on disk when it returns, so "committed" means "survives ``kill -9`` and power loss".
While one transaction commits the next batch gathers, so throughput grows with load
while a write waits for at most about two commits. Reads use a second connection: in
WAL mode readers never block the writer, nor the writer them. Each connection is used
by one thread at a time (the writer task, or a lock around the reader).

Each operation is a function of the connection run inside a savepoint: one that raises
is rolled back alone and its caller gets the exception; the others commit.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

__all__ = ["Journal", "JournalError", "SchemaMismatch"]

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]

logger = logging.getLogger("overstory.daemon")

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS goals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    goal TEXT NOT NULL,
    input TEXT NOT NULL,
    priority INTEGER NOT NULL,
    timeout REAL,
    idempotency_key TEXT UNIQUE,
    submitted_by TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    outcome TEXT,
    cancel_requested_by TEXT,
    memory TEXT
);
CREATE INDEX IF NOT EXISTS goals_by_status ON goals (status, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    goal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    output TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (goal_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    goal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    round INTEGER NOT NULL,
    path TEXT NOT NULL,
    step TEXT NOT NULL,
    agent TEXT NOT NULL,
    output TEXT NOT NULL,
    status TEXT NOT NULL,
    decision TEXT,
    decided_by TEXT,
    created_at REAL NOT NULL,
    decided_at REAL,
    UNIQUE (goal_id, key, round)
);
CREATE INDEX IF NOT EXISTS reviews_by_status ON reviews (status, id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    goal_id TEXT,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_goal ON events (goal_id, seq);
"""


class JournalError(Exception):
    """The journal could not commit (disk full, I/O error, ...); nothing in the batch was."""


class SchemaMismatch(Exception):
    """The state directory belongs to another tree, or to another journal format."""


@attrs.define(eq=False)
class _Pending:
    op: Op[Any]
    done: trio.Event | None
    on_commit: Callable[[Any], None] | None
    result: Any = None
    error: BaseException | None = None


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


class Journal:
    """One SQLite journal; see the module docstring. Open it with :meth:`open`."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._read_lock = trio.Lock()
        self._send, self._receive = trio.open_memory_channel[_Pending](math.inf)
        self.batch_limit = 512
        #: Transactions committed and operations in them, for metrics and the benchmark.
        self.commits = 0
        self.operations = 0

    @classmethod
    def open(cls, path: Path, *, tree: str) -> Journal:
        """Open (or create) the journal at ``path`` for the tree named ``tree``.

        Blocking; call it from a thread. Raises :class:`SchemaMismatch` when the file was
        made for another tree or by an incompatible version.
        """
        writer = _connect(path)
        try:
            writer.executescript(_SCHEMA)
            with writer:  # one transaction, so two daemons racing agree on the owner
                writer.execute("BEGIN IMMEDIATE")
                meta = dict(writer.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    writer.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("schema", SCHEMA_VERSION), ("tree", tree)],
                    )
                    meta = {"schema": SCHEMA_VERSION, "tree": tree}
            if meta.get("schema") != SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"{path} has journal format {meta.get('schema')!r}; this overstory "
                    f"reads format {SCHEMA_VERSION!r}"
                )
            if meta.get("tree") != tree:
                raise SchemaMismatch(
                    f"{path} holds the goals of tree {meta.get('tree')!r}, not {tree!r}; "
                    "use another --state-dir for another tree"
                )
            reader = _connect(path)
        except BaseException:
            writer.close()
            raise
        return cls(path, writer, reader)

    # -- writing ------------------------------------------------------------------------

    async def write(self, op: Op[T], *, on_commit: Callable[[T], None] | None = None) -> T:
        """Run ``op`` in the next transaction and return its result once it committed.

        ``on_commit`` runs in the writer task right after the commit, before the next
        transaction starts and even if this call was cancelled meanwhile: put there what
        must follow a commit no matter what (starting an accepted goal). Raises what
        ``op`` raised, or :class:`JournalError`. Cancelling the wait does not withdraw
        the operation.
        """
        pending = _Pending(op, trio.Event(), on_commit)
        self._send.send_nowait(pending)
        await pending.done.wait()  # type: ignore[union-attr]
        if pending.error is not None:
            raise pending.error
        result: T = pending.result
        return result

    def append(self, op: Op[T], *, on_commit: Callable[[T], None] | None = None) -> None:
        """Queue ``op`` for the next transaction without waiting for it (audit events).

        A failure is logged. After :meth:`stop` the operation is dropped with a warning.
        """
        try:
            self._send.send_nowait(_Pending(op, None, on_commit))
        except trio.ClosedResourceError:
            logger.warning("journal closed; dropped a late write")

    async def barrier(self) -> None:
        """Return once everything queued before this call has committed (or failed)."""
        await self.write(lambda connection: None)

    def stop(self) -> None:
        """Accept no more writes; :meth:`run` returns after committing what is queued."""
        self._send.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer: commit queued operations in batches until :meth:`stop`.

        Cancellation waits for the transaction in progress (it runs on a thread and is
        never abandoned) and drops what is still queued; every caller whose operation
        was dropped was cancelled with it.
        """
        task_status.started()
        async with self._receive:
            while True:
                try:
                    batch = [await self._receive.receive()]
                except trio.EndOfChannel:
                    return
                while len(batch) < self.batch_limit:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            await trio.to_thread.run_sync(self._transaction, batch)
        except sqlite3.Error as exc:
            logger.error("journal: a transaction of %d operations failed: %s", len(batch), exc)
            error = JournalError(f"the journal could not commit: {exc}")
            for pending in batch:
                pending.error = error
        else:
            self.commits += 1
            self.operations += len(batch)
        for pending in batch:
            if pending.error is None and pending.on_commit is not None:
                try:
                    pending.on_commit(pending.result)
                except Exception:
                    logger.exception("journal: an on_commit callback raised")
            elif pending.error is not None and pending.done is None:
                logger.error("journal: a queued write failed: %r", pending.error)
            if pending.done is not None:
                pending.done.set()

    def _transaction(self, batch: list[_Pending]) -> None:
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            for pending in batch:
                connection.execute("SAVEPOINT op")
                try:
                    pending.result = pending.op(connection)
                except Exception as exc:
                    connection.execute("ROLLBACK TO op")
                    pending.error = exc
                connection.execute("RELEASE op")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    # -- reading ------------------------------------------------------------------------

    async def read(self, op: Op[T]) -> T:
        """Run ``op`` on the reader connection (in a thread) and return its result."""
        async with self._read_lock:
            return await trio.to_thread.run_sync(self._read, op)

    def _read(self, op: Op[T]) -> T:
        connection = self._reader
        connection.execute("BEGIN")  # one snapshot for every statement of ``op``
        try:
            return op(connection)
        finally:
            connection.execute("COMMIT")

    def read_now(self, op: Op[T]) -> T:
        """Run ``op`` on the reader connection in this thread (startup only)."""
        return self._read(op)

    def close(self) -> None:
        """Close both connections; call after :meth:`run` returned."""
        self._reader.close()
        self._writer.close()
