"""Human review at hand-offs: what a reviewer is asked, and what it may answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

__all__ = ["Approve", "Decision", "Edit", "Reject", "ReviewRequest", "Reviewer", "auto_approve"]


@attrs.frozen(kw_only=True)
class ReviewRequest:
    """A step's output waiting for review before it is handed on.

    ``path`` is the supervisor whose step it is, ``agent`` the child that produced the
    output, and ``round`` counts reviews of this step from 1. ``key`` names the review
    point within the goal (the step's checkpoint key without item or run; a supervisor's
    own review is keyed by its path): a resumed goal asks again with the same ``key`` and
    ``round`` when it reaches the same point, so a durable reviewer can answer from a
    stored decision.
    """

    goal_id: str
    goal: str
    path: str
    step: str
    agent: str
    output: Any
    round: int
    key: str = ""


@attrs.frozen
class Approve:
    """Hand the output on unchanged."""


@attrs.frozen(kw_only=True)
class Reject:
    """Re-run the step; the agent finds ``feedback`` in ``ctx.feedback``."""

    feedback: str


@attrs.frozen(kw_only=True)
class Edit:
    """Hand on ``output`` instead of what the agent produced."""

    output: Any


Decision = Approve | Reject | Edit
Reviewer = Callable[[ReviewRequest], Awaitable[Decision]]


async def auto_approve(request: ReviewRequest) -> Decision:
    """A reviewer that approves everything, for scripts and tests."""
    return Approve()
