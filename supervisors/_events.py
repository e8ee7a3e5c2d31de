"""Supervision events: every decision a supervisor takes, as a record.

Each event is also added to the deciding supervisor's span (telemetry) and passed to
the ``on_event`` callback given to ``Tree.running`` (the daemon's audit log).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

__all__ = ["EventKind", "EventSink", "SupervisionEvent"]


class EventKind(enum.Enum):
    RETRY = "retry"
    REASSIGN = "reassign"
    ESCALATE = "escalate"
    RESTART = "restart"  # a stateful agent instance was restarted
    GROUP_RESTART = "group_restart"  # one_for_all / rest_for_one re-ran steps
    TRIP = "trip"  # restart intensity exceeded
    TRIP_PROBE = "trip_probe"  # cooldown over, one probe let through
    TRIP_RESET = "trip_reset"  # the probe succeeded
    BREAKER_OPEN = "breaker_open"
    BREAKER_HALF_OPEN = "breaker_half_open"
    BREAKER_CLOSE = "breaker_close"
    HANDOFF = "handoff"
    REVIEW = "review"
    START_FAILED = "start_failed"
    REPLAN = "replan"  # a step escalated and the plan function planned again


@attrs.frozen(kw_only=True)
class SupervisionEvent:
    """One supervision decision. ``path`` is the supervisor (or agent) that took it."""

    kind: EventKind
    path: str
    time: float
    goal_id: str | None = None
    step: str | None = None
    attempt: int | None = None
    agent: str | None = None
    next_agent: str | None = None
    delay: float | None = None
    error_type: str | None = None
    message: str = ""

    def attributes(self) -> dict[str, str | int | float]:
        """The event as OpenTelemetry attributes (``None`` fields left out)."""
        out: dict[str, str | int | float] = {"overstory.path": self.path}
        for key, value in (
            ("gen_ai.conversation.id", self.goal_id),
            ("overstory.step", self.step),
            ("overstory.attempt", self.attempt),
            ("overstory.agent", self.agent),
            ("overstory.next_agent", self.next_agent),
            ("overstory.backoff", self.delay),
            ("error.type", self.error_type),
        ):
            if value is not None:
                out[key] = value
        if self.message:
            out["overstory.message"] = self.message
        return out


EventSink = Callable[[SupervisionEvent], None]
