"""The daemon's journal: goals, checkpoints, reviews and the audit log in one SQLite file.

Writes are group-committed. Callers queue operations; one writer task runs everything
queued so far in one transaction and wakes each caller once the transaction holding its
operation has committed. Reads use a second connection: in WAL mode readers never block
the writer, nor the writer them.

How a commit reaches the disk is the ``synchronous`` setting:

``"normal"`` (the default)
    SQLite's ``synchronous=NORMAL``: a commit is written to the WAL file (the operating
    system's page cache) and not fsynced, so it survives the process dying in any way
    (``kill -9``, a crash) but not the machine losing power or the kernel crashing. The
    transaction runs on the event loop's thread: without an fsync a batch takes well
    under a millisecond, and handing it to a thread cost the loop more than running it
    (two thread wake-ups and GIL hand-overs per batch). What would block is moved off
    the loop: the writer never checkpoints in a commit (``wal_autocheckpoint=0``); a
    third connection checkpoints on a worker thread about once a second after writes,
    and each checkpoint fsyncs the WAL first, so what is committed reaches the disk
    within about a second. When the WAL has grown past :data:`RESTART_FRAMES`, the
    writer waits between two batches for a short catch-up checkpoint on a worker
    thread, so the WAL is reused from its start instead of growing. When another
    process holds the write lock, the batch waits for it on a worker thread instead.
``"full"``
    ``synchronous=FULL``: each commit is fsynced before it returns, so committed means
    it survives power loss too. The transaction runs on a worker thread, so a slow disk
    stalls writes and not the event loop.

While one transaction commits the next batch gathers, so throughput grows with load.
Each connection is used by one thread at a time (the writer task or its one worker
thread, a lock around the reader, the checkpoint task's thread).

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

from overstory.daemon._config import SYNCHRONOUS, Synchronous

__all__ = ["Journal", "JournalError", "SchemaMismatch"]

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]

logger = logging.getLogger("overstory.daemon")

SCHEMA_VERSION = "1"

#: Seconds a write may wait for another process's write lock (``"full"``, or the
#: fallback thread of ``"normal"``).
BUSY_TIMEOUT = 30.0
#: Seconds between the first commit after a checkpoint and the next checkpoint
#: (``"normal"``): bounds both the WAL's growth and how long a commit stays unsynced.
CHECKPOINT_DELAY = 1.0
#: WAL frames (pages) left after a checkpoint above which the writer pauses for a
#: catch-up checkpoint, so the WAL starts afresh (``"normal"``; SQLite's own automatic
#: checkpoint, which ``"full"`` keeps, runs at the same size).
RESTART_FRAMES = 1000
#: Bytes the WAL file is cut back to when SQLite starts it afresh. Reusing the WAL
#: never shrinks the file, so without a limit it would keep the size of its largest
#: burst (tens of MiB under sustained load) for the daemon's whole life.
WAL_SIZE_LIMIT = 16 * 2**20

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
CREATE INDEX IF NOT EXISTS goals_by_finish ON goals (finished_at)
    WHERE finished_at IS NOT NULL;
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


def _connect(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return connection


class Journal:
    """One SQLite journal; see the module docstring. Open it with :meth:`open`."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        checkpointer: sqlite3.Connection | None = None,
    ):
        self.path = path
        self._writer = writer
        self._reader = reader
        #: Set (``"normal"``): transactions run on the event loop's thread, and this
        #: connection checkpoints on a worker thread.
        self._checkpointer = checkpointer
        self._wrote = trio.Event()
        self._catch_up = False
        self._read_lock = trio.Lock()
        self._send, self._receive = trio.open_memory_channel[_Pending](math.inf)
        self.batch_limit = 512
        #: Transactions committed, operations in them and checkpoints run (``"normal"``),
        #: for metrics, tests and the benchmark.
        self.commits = 0
        self.operations = 0
        self.checkpoints = 0

    @classmethod
    def open(cls, path: Path, *, tree: str, synchronous: Synchronous = "normal") -> Journal:
        """Open (or create) the journal at ``path`` for the tree named ``tree``, committing
        as ``synchronous`` says (see the module docstring).

        Blocking; call it from a thread. Raises :class:`SchemaMismatch` when the file was
        made for another tree or by an incompatible version.
        """
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
        writer = _connect(path, synchronous)
        opened: list[sqlite3.Connection] = [writer]
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
            opened.append(reader := _connect(path, synchronous))
            checkpointer = None
            if synchronous == "normal":
                # On the event loop's thread the writer must never wait: not for a
                # checkpoint (the checkpointer's), not for another process's lock
                # (answered at once with SQLITE_BUSY; the batch then waits on a thread).
                writer.execute("PRAGMA wal_autocheckpoint=0")
                writer.execute("PRAGMA busy_timeout=0")
                opened.append(checkpointer := _connect(path, synchronous))
        except BaseException:
            for connection in opened:
                connection.close()
            raise
        return cls(path, writer, reader, checkpointer)

    @property
    def synchronous(self) -> Synchronous:
        return "normal" if self._checkpointer is not None else "full"

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
            try:
                raise pending.error
            finally:
                # The error's traceback holds the transaction's frame, which holds the
                # batch and so ``pending``: let go, so no cycle outlives this call.
                pending.error = None
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

        Cancellation waits for the transaction or checkpoint in progress (one on a worker
        thread is never abandoned) and drops what is still queued; every caller whose
        operation was dropped was cancelled with it.
        """
        async with trio.open_nursery() as nursery:
            if self._checkpointer is not None:
                nursery.start_soon(self._checkpoints)
            task_status.started()
            await self._write_batches()
            nursery.cancel_scope.cancel()

    async def _write_batches(self) -> None:
        async with self._receive:
            while True:
                try:
                    batch = [await self._receive.receive()]
                except trio.EndOfChannel:
                    return
                if self._catch_up:
                    # No commit may run meanwhile, so this one copies the whole WAL (what
                    # the concurrent checkpoint left: brief) and the next transaction
                    # starts it afresh. Writes queued meanwhile join the batch.
                    self._catch_up = False
                    await trio.to_thread.run_sync(self._checkpoint, self._writer)
                while len(batch) < self.batch_limit:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            if self._checkpointer is None:
                await trio.to_thread.run_sync(self._transaction, batch)
            else:
                try:
                    self._transaction(batch)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                    await trio.to_thread.run_sync(self._transaction_patiently, batch)
                self._wrote.set()
        except sqlite3.Error as exc:
            logger.error("journal: a transaction of %d operations failed: %s", len(batch), exc)
            for pending in batch:
                # One error each: an exception raised in several tasks would gather all
                # their frames in one traceback.
                pending.error = JournalError(f"the journal could not commit: {exc}")
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
                pending.error = None  # (see write())
            if pending.done is not None:
                pending.done.set()

    def _transaction(self, batch: list[_Pending]) -> None:
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            for pending in batch:
                connection.execute("SAVEPOINT op")
                pending.error = None  # a batch retried after SQLITE_BUSY starts afresh
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

    def _transaction_patiently(self, batch: list[_Pending]) -> None:
        """:meth:`_transaction` waiting up to :data:`BUSY_TIMEOUT` for the write lock
        (on a worker thread: another process holds it)."""
        self._writer.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        try:
            self._transaction(batch)
        finally:
            self._writer.execute("PRAGMA busy_timeout=0")

    async def _checkpoints(self) -> None:
        """Checkpoint on a worker thread about :data:`CHECKPOINT_DELAY` seconds after the
        first commit since the last checkpoint, while the writer goes on committing: this
        is what fsyncs the WAL. SQLite starts the WAL afresh only at a transaction that
        finds all of it copied, which commits made during the checkpoint prevent; past
        :data:`RESTART_FRAMES` the writer is asked to let a checkpoint catch up."""
        assert self._checkpointer is not None
        while True:
            await self._wrote.wait()
            await trio.sleep(CHECKPOINT_DELAY)
            self._wrote = trio.Event()
            frames = await trio.to_thread.run_sync(self._checkpoint, self._checkpointer)
            # ``frames`` is what the WAL held when the checkpoint began; commits made
            # since are not copied yet, and keep SQLite from starting the WAL afresh.
            if frames >= RESTART_FRAMES:
                self._catch_up = True

    def _checkpoint(self, connection: sqlite3.Connection) -> int:
        """A PASSIVE checkpoint (copies what no reader still needs, never waits for the
        writer); returns the number of frames the WAL held when it began."""
        try:
            _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            # The WAL keeps everything committed; the next checkpoint tries again.
            logger.warning("journal: a checkpoint failed: %s", exc)
            return 0
        self.checkpoints += 1
        return int(frames)

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
        """Close the connections (the last one to close checkpoints the WAL into the
        database); call after :meth:`run` returned."""
        self._reader.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._writer.close()
