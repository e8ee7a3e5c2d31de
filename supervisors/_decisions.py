"""What one attempt leads to, and the routing state a unit of work keeps between attempts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from overstory._errors import Failure
from overstory.hierarchy._task import Handoff
from overstory.telemetry._hooks import SpanHook

__all__ = [
    "RETRY_AT_ONCE",
    "Decision",
    "Done",
    "Escalate",
    "RetryLater",
    "Track",
    "UpwardHandoff",
]


@attrs.frozen
class UpwardHandoff:
    """A hand-off no child of a supervisor fits, passed up as that supervisor's output."""

    handoff: Handoff
    hops: int
    origin: str


@attrs.frozen
class Done:
    """The attempt succeeded (or a checkpoint had its output)."""

    output: Any
    agent: str | None
    resumed: bool = False


@attrs.frozen
class RetryLater:
    """Try again after ``delay`` seconds: on the same child, or the next after a reassignment."""

    delay: float


#: The decision to retry without waiting (one object: it is the common one).
RETRY_AT_ONCE = RetryLater(0.0)


@attrs.frozen
class Escalate:
    """Give up on the unit: the supervisor escalates ``error``."""

    error: Failure


Decision = Done | RetryLater | Escalate


@attrs.define(eq=False)
class Track:
    """Routing and retry state of one unit of work, kept across its re-runs."""

    step: str
    ranked: Sequence[str] | None = None
    index: int = 0
    attempt: int = 0
    total: int = 0
    previous: SpanHook | None = None
