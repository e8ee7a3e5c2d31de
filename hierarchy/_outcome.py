"""The record of what a goal did: status, output, steps and the failure chain."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from overstory.hierarchy._budget import UsageSummary

__all__ = ["FailureRecord", "Outcome", "Status", "StepRecord"]


class Status(enum.Enum):
    """How a goal (or one step) ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    #: The goal's token, cost or attempt budget ran out; everything below was cancelled.
    BUDGET_EXHAUSTED = "budget_exhausted"


@attrs.frozen(kw_only=True)
class FailureRecord:
    """One failure, where it happened: a failed attempt, an escalation, a failed review.

    ``at`` is seconds since the goal started; ``traceback`` is the formatted traceback
    (empty for decisions such as escalations, whose cause is the record before them).
    """

    path: str
    layer: str
    step: str | None
    attempt: int
    error_type: str
    message: str
    traceback: str = ""
    at: float = 0.0


@attrs.frozen(kw_only=True)
class StepRecord:
    """One step as one supervisor ran it.

    ``agent`` is the path of the child whose output was kept (``None`` when the step did
    not succeed); ``attempts`` counts every attempt on every child, ``runs`` how often the
    step was started (group restarts and review rejections re-run it). ``item`` is set for
    each item of a fan-out. ``review`` says what the reviewer decided last, if anyone did.
    """

    supervisor: str
    step: str
    status: Status
    agent: str | None = None
    attempts: int = 0
    runs: int = 1
    item: int | None = None
    started: float = 0.0
    duration: float = 0.0
    review: str | None = None
    resumed: bool = False


@attrs.frozen(kw_only=True)
class Outcome:
    """How a goal ended.

    ``steps`` has a record for every step of every supervisor that worked on the goal,
    in the order they ended; ``failures`` is the ordered failure chain, including the
    failures that were recovered from. ``usage`` rolls up what agents charged (tokens,
    cost) and the leaf attempts, per agent, per layer and in total. ``started_at`` is a
    Unix time; ``duration`` is in seconds of trio's clock. ``memory`` is the goal's shared
    memory when it ended.
    """

    goal_id: str
    goal: str
    tree: str
    status: Status
    output: Any = None
    steps: tuple[StepRecord, ...] = ()
    failures: tuple[FailureRecord, ...] = ()
    memory: dict[str, Any] = attrs.field(factory=dict)
    usage: UsageSummary = attrs.field(factory=UsageSummary)
    started_at: float = 0.0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCEEDED

    @property
    def error(self) -> str | None:
        """The last failure's ``type: message``; ``None`` when the goal succeeded, and
        when it ended without a failure (cancelled, or timed out between attempts):
        ``status`` says how it ended."""
        if self.ok or not self.failures:
            return None
        last = self.failures[-1]
        return f"{last.error_type}: {last.message}"
