"""Supervision policies and events: retry, backoff, intensity, breakers, strategies.

The runtime that applies them lives in the private modules of this package.
"""

from overstory.supervisors._events import EventKind as EventKind
from overstory.supervisors._events import SupervisionEvent as SupervisionEvent
from overstory.supervisors._policies import Backoff as Backoff
from overstory.supervisors._policies import Breaker as Breaker
from overstory.supervisors._policies import Intensity as Intensity
from overstory.supervisors._policies import Restart as Restart
from overstory.supervisors._policies import Retry as Retry
from overstory.supervisors._policies import Strategy as Strategy

__all__ = [
    "Backoff",
    "Breaker",
    "EventKind",
    "Intensity",
    "Restart",
    "Retry",
    "Strategy",
    "SupervisionEvent",
]
