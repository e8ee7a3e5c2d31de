"""What the HTTP API answers: the statuses and the response classes.

The statuses live here because responses carry them; the journal's store reads and writes
them too.
"""

from __future__ import annotations

import enum

# ``Any`` is a runtime import on purpose: cattrs and json_schema resolve these classes'
# string annotations against this module's globals.
from typing import Any

import attrs

from overstory.daemon._model_fields import doc


class GoalStatus(enum.Enum):
    """Where a goal is. All but queued and running are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    BUDGET_EXHAUSTED = "budget_exhausted"

    @property
    def final(self) -> bool:
        return self not in (GoalStatus.QUEUED, GoalStatus.RUNNING)


class ReviewStatus(enum.Enum):
    """A review is pending until decided; ``void`` when its goal ended first."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"
    VOID = "void"


@attrs.frozen(kw_only=True)
class Problem:
    """One thing wrong with a request: the field (dotted path, ``""`` for the whole body)."""

    field: str
    problem: str


@attrs.frozen(kw_only=True)
class ErrorBody:
    """Every 4xx and 5xx answer: a stable code, a sentence, and the fields at fault."""

    error: str
    message: str
    problems: list[Problem] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class HealthView:
    status: str


@attrs.frozen(kw_only=True)
class GoalSummary:
    """A goal as lists show it."""

    id: str
    goal: str
    status: GoalStatus
    priority: int
    timeout: float | None
    idempotency_key: str | None
    submitted_by: str
    created_at: float = attrs.field(metadata=doc("Unix time the goal was accepted (committed)."))
    started_at: float | None = attrs.field(metadata=doc("Unix time it first started running."))
    finished_at: float | None
    error: str | None = attrs.field(
        metadata=doc("The last failure, 'Type: message', for failed goals.")
    )


@attrs.frozen(kw_only=True)
class StepDone:
    """A completed step whose output is checkpointed (it will not run again)."""

    key: str
    at: float
    output: Any


@attrs.frozen(kw_only=True)
class AttemptView:
    """An agent attempt running right now."""

    path: str
    step: str | None
    attempt: int
    since: float


@attrs.frozen(kw_only=True)
class GoalDetail(GoalSummary):
    """A goal with its input, the steps done so far, what runs now, and its outcome."""

    input: Any
    steps: list[StepDone]
    running: list[AttemptView]
    pending_reviews: list[int]
    outcome: dict[str, Any] | None = attrs.field(
        metadata=doc("The core's Outcome as JSON, once the goal ended.")
    )


@attrs.frozen(kw_only=True)
class GoalPage:
    goals: list[GoalSummary]
    next_cursor: str | None = attrs.field(
        metadata=doc("Pass as ?cursor= for the next page; null on the last.")
    )


@attrs.frozen(kw_only=True)
class ReviewView:
    """A step's output held for a human decision."""

    id: int
    goal_id: str
    key: str
    round: int
    path: str
    step: str
    agent: str
    output: Any
    status: ReviewStatus
    reason: str | None
    edited_output: Any
    decided_by: str | None
    created_at: float
    decided_at: float | None


@attrs.frozen(kw_only=True)
class ReviewList:
    reviews: list[ReviewView]


@attrs.frozen(kw_only=True)
class EventView:
    """One entry of the append-only audit log."""

    seq: int
    at: float
    goal_id: str | None
    kind: str
    actor: str = attrs.field(metadata=doc("'daemon', 'tree', or the role of the token that asked."))
    data: dict[str, Any]


@attrs.frozen(kw_only=True)
class EventPage:
    events: list[EventView]
    next_after: int | None = attrs.field(
        metadata=doc("Pass as ?after= for the next page; null on the last.")
    )


@attrs.frozen(kw_only=True)
class TraceView:
    """A goal's recorded spans (one trace per run), as ``overstory trace`` reads them."""

    goal_id: str
    spans: list[dict[str, Any]]


@attrs.frozen(kw_only=True)
class NodeView:
    """One node of the live tree (see overstory.NodeHealth)."""

    path: str
    layer: str
    in_flight: int
    succeeded: int
    failed: int
    breaker: str | None
    tripped: bool | None
    recent_failures: int | None
    live: int | None
    restarts: int | None


@attrs.frozen(kw_only=True)
class TreeView:
    tree: str
    accepting: bool
    goals_running: int
    goals_queued: int
    reviews_pending: int
    nodes: list[NodeView]
