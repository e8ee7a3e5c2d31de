"""overstory's OpenTelemetry metrics: goal and attempt counts and durations, and counts
of the supervision events (retries, reassignments, escalations, restarts, trips,
breaker transitions). The spans in :mod:`overstory.telemetry._otel` feed them."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from overstory.hierarchy._layer import Layer
from overstory.telemetry._hooks import AttributeValue

__all__ = ["CANCELLED", "FAILED", "GOAL_STATUS", "SUCCEEDED", "Metrics"]

# Outcomes of a span, shared with the spans module, which decides them: the values of
# the ``overstory.outcome`` metric attribute.
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

# The goal-span attribute the spans read a goal's status from, and the metric attribute
# that status is recorded under.
GOAL_STATUS = "overstory.goal.status"

# Supervision event name -> (counter, extra metric attributes).
_EVENT_COUNTERS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "retry": ("retries", ()),
    "reassign": ("reassignments", ()),
    "escalate": ("escalations", ()),
    "restart": ("restarts", (("overstory.restart.kind", "instance"),)),
    "group_restart": ("restarts", (("overstory.restart.kind", "group"),)),
    "trip": ("trips", ()),
    "breaker_open": ("breaker", (("overstory.breaker.state", "open"),)),
    "breaker_half_open": ("breaker", (("overstory.breaker.state", "half_open"),)),
    "breaker_close": ("breaker", (("overstory.breaker.state", "closed"),)),
}

_Key = tuple[tuple[str, str], ...]


class _Counts:
    """Counts kept in a plain dict and read by an observable counter at collection time:
    a count costs a dict update on the trio thread instead of an SDK measurement."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[_Key, int] = {}

    def add(self, key: _Key) -> None:
        self.values[key] = self.values.get(key, 0) + 1

    def observe(self, options: CallbackOptions) -> list[Observation]:
        # dict.copy() is atomic under the GIL: the reader's thread never sees a dict
        # changing size under it.
        return [Observation(value, dict(key)) for key, value in self.values.copy().items()]


class Metrics:
    """The instruments. Counters are observable (see :class:`_Counts`); durations are
    histograms, recorded when a span ends."""

    _COUNTERS = (
        ("goals", "overstory.goals", "{goal}", "Goals that ended, by status."),
        (
            "attempts",
            "overstory.attempts",
            "{attempt}",
            "Agent invocations (one per attempt), by layer and outcome.",
        ),
        ("retries", "overstory.retries", "{retry}", "Attempts retried."),
        (
            "reassignments",
            "overstory.reassignments",
            "{reassignment}",
            "Steps reassigned to another child.",
        ),
        (
            "escalations",
            "overstory.escalations",
            "{escalation}",
            "Steps a supervisor gave up on and escalated.",
        ),
        (
            "restarts",
            "overstory.restarts",
            "{restart}",
            "Agent instances restarted and plan groups re-run.",
        ),
        ("trips", "overstory.trips", "{trip}", "Supervisors past their restart intensity."),
        (
            "breaker",
            "overstory.breaker.transitions",
            "{transition}",
            "Circuit breaker state changes, by the state entered.",
        ),
    )

    def __init__(self, meter: Meter) -> None:
        self.counts: dict[str, _Counts] = {}
        for key, name, unit, description in self._COUNTERS:
            counts = self.counts[key] = _Counts()
            meter.create_observable_counter(
                name, callbacks=[counts.observe], unit=unit, description=description
            )
        self.goal_duration = meter.create_histogram(
            "overstory.goal.duration", unit="s", description="How long goals ran, by status."
        )
        self.attempt_duration = meter.create_histogram(
            "overstory.attempt.duration",
            unit="s",
            description="How long agent invocations ran, by layer and outcome.",
        )
        self._attempt_attributes: dict[tuple[Layer, str], dict[str, str]] = {
            (layer, outcome): {"overstory.layer": layer.value, "overstory.outcome": outcome}
            for layer in Layer
            for outcome in (SUCCEEDED, FAILED, CANCELLED)
        }

    def attempt(self, layer: Layer, outcome: str, seconds: float) -> None:
        attributes = self._attempt_attributes[layer, outcome]
        self.counts["attempts"].add(
            (("overstory.layer", layer.value), ("overstory.outcome", outcome))
        )
        self.attempt_duration.record(seconds, attributes)

    def goal(self, tree: str, status: str, seconds: float) -> None:
        self.counts["goals"].add((("overstory.tree", tree), (GOAL_STATUS, status)))
        self.goal_duration.record(seconds, {"overstory.tree": tree, GOAL_STATUS: status})

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        counter = _EVENT_COUNTERS.get(name)
        if counter is None:
            return
        key, extra = counter
        path = str(attributes.get("overstory.path", ""))
        self.counts[key].add((("overstory.path", path), *extra))
