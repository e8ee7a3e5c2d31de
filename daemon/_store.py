"""The journal's operations: plain functions of an SQLite connection.

Each runs inside one transaction of the journal (writes through ``Journal.write`` or
``Journal.append``, reads through ``Journal.read``). A write that changes a goal or a
review appends its audit event in the same transaction, so the audit log and the state
it describes can never disagree.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from overstory.daemon._models import EventView, GoalStatus, GoalSummary, ReviewStatus, ReviewView
from overstory.hierarchy._review import ReviewRequest

__all__ = ["Conflict", "GoalRow", "NotFound"]

FINAL = tuple(s.value for s in GoalStatus if s.final)


class NotFound(LookupError):
    """No goal or review with that id."""


class Conflict(Exception):
    """The request contradicts the state (a review already decided, a goal already ended)."""


@attrs.frozen(kw_only=True)
class GoalRow:
    seq: int
    id: str
    goal: str
    input: str
    priority: int
    timeout: float | None
    idempotency_key: str | None
    submitted_by: str
    status: GoalStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    outcome: str | None
    cancel_requested_by: str | None

    def summary(self, status: GoalStatus | None = None) -> GoalSummary:
        return GoalSummary(
            id=self.id,
            goal=self.goal,
            status=status or self.status,
            priority=self.priority,
            timeout=self.timeout,
            idempotency_key=self.idempotency_key,
            submitted_by=self.submitted_by,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
        )


_GOAL_COLUMNS = (
    "seq, id, goal, input, priority, timeout, idempotency_key, submitted_by, status, "
    "created_at, started_at, finished_at, error, outcome, cancel_requested_by"
)
_REVIEW_COLUMNS = (
    "id, goal_id, key, round, path, step, agent, output, status, decision, decided_by, "
    "created_at, decided_at"
)


def _goal(row: Sequence[Any]) -> GoalRow:
    values = list(row)
    values[8] = GoalStatus(values[8])
    return GoalRow(**dict(zip(_GOAL_COLUMNS.split(", "), values, strict=True)))


def _review(row: Sequence[Any]) -> ReviewView:
    (id_, goal_id, key, round_, path, step, agent, output, status, decision, by, at, decided) = row
    status = ReviewStatus(status)
    reason = decision if status is ReviewStatus.REJECTED else None
    edited = json.loads(decision) if status is ReviewStatus.EDITED else None
    return ReviewView(
        id=id_,
        goal_id=goal_id,
        key=key,
        round=round_,
        path=path,
        step=step,
        agent=agent,
        output=json.loads(output),
        status=status,
        reason=reason,
        edited_output=edited,
        decided_by=by,
        created_at=at,
        decided_at=decided,
    )


# -- events ------------------------------------------------------------------------------


def event(
    c: sqlite3.Connection,
    *,
    at: float,
    goal_id: str | None,
    kind: str,
    actor: str,
    data: dict[str, Any],
) -> EventView:
    """Append one audit event."""
    cursor = c.execute(
        "INSERT INTO events (at, goal_id, kind, actor, data) VALUES (?, ?, ?, ?, ?)",
        (at, goal_id, kind, actor, json.dumps(data)),
    )
    assert cursor.lastrowid is not None
    return EventView(
        seq=cursor.lastrowid, at=at, goal_id=goal_id, kind=kind, actor=actor, data=data
    )


def events(
    c: sqlite3.Connection,
    *,
    goal_id: str | None = None,
    kind: str | None = None,
    after: int = 0,
    limit: int = 1000,
) -> list[EventView]:
    """Events in order of ``seq``, after ``after``, optionally of one goal or one kind
    (``kind`` ending in ``.`` matches the prefix)."""
    where = ["seq > ?"]
    params: list[Any] = [after]
    if goal_id is not None:
        where.append("goal_id = ?")
        params.append(goal_id)
    if kind is not None:
        if kind.endswith("."):
            where.append("substr(kind, 1, ?) = ?")
            params.extend([len(kind), kind])
        else:
            where.append("kind = ?")
            params.append(kind)
    rows = c.execute(
        f"SELECT seq, at, goal_id, kind, actor, data FROM events WHERE {' AND '.join(where)} "
        "ORDER BY seq LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
        EventView(seq=s, at=at, goal_id=g, kind=k, actor=a, data=json.loads(d))
        for s, at, g, k, a, d in rows
    ]


# -- goals -------------------------------------------------------------------------------


def accept(
    c: sqlite3.Connection,
    *,
    goal_id: str,
    goal: str,
    input: str,
    priority: int,
    timeout: float | None,
    idempotency_key: str | None,
    actor: str,
    token: str,
    at: float,
) -> tuple[GoalRow, EventView | None]:
    """Insert a queued goal, or return the goal that already has ``idempotency_key``
    (with no event)."""
    cursor = c.execute(
        "INSERT INTO goals (id, goal, input, priority, timeout, idempotency_key, "
        "submitted_by, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?) "
        "ON CONFLICT (idempotency_key) DO NOTHING",
        (goal_id, goal, input, priority, timeout, idempotency_key, actor, at),
    )
    if cursor.rowcount == 0:
        existing = find_by_key(c, idempotency_key or "")
        assert existing is not None
        return existing, None
    assert cursor.lastrowid is not None
    # The row as inserted, without reading it back: the hot path of every submission.
    row = GoalRow(
        seq=cursor.lastrowid,
        id=goal_id,
        goal=goal,
        input=input,
        priority=priority,
        timeout=timeout,
        idempotency_key=idempotency_key,
        submitted_by=actor,
        status=GoalStatus.QUEUED,
        created_at=at,
        started_at=None,
        finished_at=None,
        error=None,
        outcome=None,
        cancel_requested_by=None,
    )
    data = {"goal": goal, "priority": priority, "token": token}
    if idempotency_key is not None:
        data["idempotency_key"] = idempotency_key
    return row, event(c, at=at, goal_id=goal_id, kind="goal.accepted", actor=actor, data=data)


def get_goal(c: sqlite3.Connection, goal_id: str) -> GoalRow | None:
    row = c.execute(f"SELECT {_GOAL_COLUMNS} FROM goals WHERE id = ?", (goal_id,)).fetchone()
    return _goal(row) if row is not None else None


def find_by_key(c: sqlite3.Connection, key: str) -> GoalRow | None:
    row = c.execute(
        f"SELECT {_GOAL_COLUMNS} FROM goals WHERE idempotency_key = ?", (key,)
    ).fetchone()
    return _goal(row) if row is not None else None


def list_goals(
    c: sqlite3.Connection, *, status: GoalStatus | None, before: int | None, limit: int
) -> list[GoalRow]:
    """Newest first, at most ``limit``, with ``seq`` below ``before`` when given."""
    where: list[str] = ["1"]
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status.value)
    if before is not None:
        where.append("seq < ?")
        params.append(before)
    rows = c.execute(
        f"SELECT {_GOAL_COLUMNS} FROM goals WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_goal(row) for row in rows]


def unfinished(c: sqlite3.Connection) -> list[GoalRow]:
    """Queued and running goals, oldest first: what a restart resumes."""
    rows = c.execute(
        f"SELECT {_GOAL_COLUMNS} FROM goals WHERE status IN ('queued', 'running') ORDER BY seq"
    ).fetchall()
    return [_goal(row) for row in rows]


def count_by_status(c: sqlite3.Connection) -> dict[str, int]:
    return dict(c.execute("SELECT status, count(*) FROM goals GROUP BY status").fetchall())


def started(
    c: sqlite3.Connection, *, goal_id: str, at: float, first: bool, resumed_steps: int
) -> EventView:
    """Mark a goal running; the first start fixes ``started_at`` (its deadline's origin)."""
    c.execute(
        "UPDATE goals SET status = 'running', started_at = coalesce(started_at, ?) WHERE id = ?",
        (at, goal_id),
    )
    kind = "goal.started" if first else "goal.resumed"
    data = {} if first else {"checkpointed_steps": resumed_steps}
    return event(c, at=at, goal_id=goal_id, kind=kind, actor="daemon", data=data)


def request_cancel(
    c: sqlite3.Connection, *, goal_id: str, actor: str, token: str, at: float
) -> EventView:
    """Record who asked to cancel an unfinished goal (a restart finishes it as cancelled)."""
    cursor = c.execute(
        "UPDATE goals SET cancel_requested_by = coalesce(cancel_requested_by, ?) "
        f"WHERE id = ? AND status NOT IN {FINAL}",
        (actor, goal_id),
    )
    if cursor.rowcount == 0:
        row = get_goal(c, goal_id)
        if row is None:
            raise NotFound(goal_id)
        raise Conflict(f"goal {goal_id} already ended: {row.status.value}")
    return event(
        c, at=at, goal_id=goal_id, kind="goal.cancel_requested", actor=actor, data={"token": token}
    )


def finish(
    c: sqlite3.Connection,
    *,
    goal_id: str,
    status: GoalStatus,
    at: float,
    error: str | None,
    outcome: str | None,
    actor: str,
) -> list[EventView]:
    """Record a goal's final status (once: a goal already final is left alone) and void
    its pending reviews."""
    cursor = c.execute(
        "UPDATE goals SET status = ?, finished_at = ?, error = ?, outcome = ? "
        f"WHERE id = ? AND status NOT IN {FINAL}",
        (status.value, at, error, outcome, goal_id),
    )
    if cursor.rowcount == 0:
        return []
    voided = [
        rid
        for (rid,) in c.execute(
            "UPDATE reviews SET status = 'void', decided_at = ? "
            "WHERE goal_id = ? AND status = 'pending' RETURNING id",
            (at, goal_id),
        ).fetchall()
    ]
    found = [
        event(c, at=at, goal_id=goal_id, kind="review.void", actor="daemon", data={"review": rid})
        for rid in sorted(voided)
    ]
    data: dict[str, Any] = {"status": status.value}
    if error is not None:
        data["error"] = error
    found.append(event(c, at=at, goal_id=goal_id, kind="goal.finished", actor=actor, data=data))
    return found


def purge(c: sqlite3.Connection, *, before: float, limit: int) -> int:
    """Delete up to ``limit`` goals that ended before ``before`` (seconds since the
    epoch), oldest first, with their checkpoints, reviews and audit events; returns how
    many. Goals that have not ended are never deleted, however old."""
    ids = [
        goal_id
        for (goal_id,) in c.execute(
            f"SELECT id FROM goals WHERE finished_at < ? AND status IN {FINAL} "
            "ORDER BY finished_at LIMIT ?",
            (before, limit),
        ).fetchall()
    ]
    # One goal per execution of a fixed statement, not ``IN (?, ?, ...)`` with as many
    # marks as goals: each batch size would be another prepared statement in the
    # connection's cache, and the daemon's memory grew by a few hundred KB per 10,000
    # goals until that cache was full.
    rows = [(goal_id,) for goal_id in ids]
    for table in ("checkpoints", "reviews", "events"):
        c.executemany(f"DELETE FROM {table} WHERE goal_id = ?", rows)
    c.executemany("DELETE FROM goals WHERE id = ?", rows)
    return len(ids)


def purge_daemon_events(c: sqlite3.Connection, *, before: float) -> int:
    """Delete the daemon's own audit events (no goal: starts, stops) older than
    ``before``; returns how many."""
    return c.execute("DELETE FROM events WHERE goal_id IS NULL AND at < ?", (before,)).rowcount


# -- checkpoints -------------------------------------------------------------------------


def checkpoint(
    c: sqlite3.Connection, *, goal_id: str, key: str, output: str, at: float
) -> EventView:
    """Store a completed step's output (a re-run of the same key replaces it)."""
    c.execute(
        "INSERT INTO checkpoints (goal_id, key, output, at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (goal_id, key) DO UPDATE SET output = excluded.output, at = excluded.at",
        (goal_id, key, output, at),
    )
    return event(
        c, at=at, goal_id=goal_id, kind="step.checkpointed", actor="tree", data={"key": key}
    )


def checkpoints(c: sqlite3.Connection, goal_id: str) -> list[tuple[str, float, str]]:
    """``(key, at, output JSON)`` of a goal's completed steps, in the order they completed."""
    return c.execute(
        "SELECT key, at, output FROM checkpoints WHERE goal_id = ? ORDER BY at, key", (goal_id,)
    ).fetchall()


# -- reviews -----------------------------------------------------------------------------


def open_review(
    c: sqlite3.Connection, *, request: ReviewRequest, output: str, at: float
) -> tuple[ReviewView, EventView | None]:
    """The review for ``(goal, key, round)``: created pending, or the stored one (a pending
    one gets the new output; a decided one is returned as it was decided)."""
    cursor = c.execute(
        "INSERT INTO reviews (goal_id, key, round, path, step, agent, output, status, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT "
        "(goal_id, key, round) DO NOTHING",
        (
            request.goal_id,
            request.key,
            request.round,
            request.path,
            request.step,
            request.agent,
            output,
            at,
        ),
    )
    created = cursor.rowcount == 1
    if not created:
        c.execute(
            "UPDATE reviews SET output = ?, agent = ? WHERE goal_id = ? AND key = ? AND "
            "round = ? AND status = 'pending'",
            (output, request.agent, request.goal_id, request.key, request.round),
        )
    row = c.execute(
        f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE goal_id = ? AND key = ? AND round = ?",
        (request.goal_id, request.key, request.round),
    ).fetchone()
    review = _review(row)
    if not created:
        return review, None
    data = {"review": review.id, "path": request.path, "step": request.step, "round": request.round}
    return review, event(
        c, at=at, goal_id=request.goal_id, kind="review.requested", actor="tree", data=data
    )


def decide_review(
    c: sqlite3.Connection,
    *,
    review_id: int,
    status: ReviewStatus,
    decision: str | None,
    actor: str,
    token: str,
    at: float,
) -> tuple[ReviewView, EventView]:
    """Decide a pending review; :class:`NotFound` or :class:`Conflict` otherwise."""
    row = c.execute(
        "UPDATE reviews SET status = ?, decision = ?, decided_by = ?, decided_at = ? "
        f"WHERE id = ? AND status = 'pending' RETURNING {_REVIEW_COLUMNS}",
        (status.value, decision, actor, at, review_id),
    ).fetchone()
    if row is None:
        existing = get_review(c, review_id)
        if existing is None:
            raise NotFound(str(review_id))
        raise Conflict(f"review {review_id} is {existing.status.value}, not pending")
    review = _review(row)
    data: dict[str, Any] = {"review": review_id, "decision": status.value, "token": token}
    if status is ReviewStatus.REJECTED:
        data["reason"] = decision
    return review, event(
        c, at=at, goal_id=review.goal_id, kind="review.decided", actor=actor, data=data
    )


def get_review(c: sqlite3.Connection, review_id: int) -> ReviewView | None:
    row = c.execute(f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE id = ?", (review_id,)).fetchone()
    return _review(row) if row is not None else None


def list_reviews(
    c: sqlite3.Connection, *, status: ReviewStatus | None, goal_id: str | None, limit: int
) -> list[ReviewView]:
    where: list[str] = ["1"]
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status.value)
    if goal_id is not None:
        where.append("goal_id = ?")
        params.append(goal_id)
    rows = c.execute(
        f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_review(row) for row in rows]


def pending_review_ids(c: sqlite3.Connection, goal_id: str) -> list[int]:
    return [
        rid
        for (rid,) in c.execute(
            "SELECT id FROM reviews WHERE goal_id = ? AND status = 'pending' ORDER BY id",
            (goal_id,),
        )
    ]


def count_pending_reviews(c: sqlite3.Connection) -> int:
    (count,) = c.execute("SELECT count(*) FROM reviews WHERE status = 'pending'").fetchone()
    return int(count)
