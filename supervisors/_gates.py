"""Runtime state of restart intensity (per supervisor) and circuit breakers (per child).

Both are plain state machines fed with trio's clock by the supervisor; they never
sleep or spawn, so they are cheap on the hot path and trivial to test with any clock.
"""

from __future__ import annotations

import enum
from collections import deque

from overstory.supervisors._policies import Breaker, Intensity

__all__ = [
    "ADMIT_OPEN",
    "ADMIT_PROBE",
    "ADMIT_REJECT",
    "Admission",
    "BreakerState",
    "CircuitBreaker",
    "IntensityGate",
]


class Admission(enum.Enum):
    OPEN = "open"  # run as usual
    PROBE = "probe"  # the cooldown is over: this task is the one probe
    REJECT = "reject"  # tripped: escalate at once


# Looked up once: on Python 3.11 an ``Enum.MEMBER`` lookup allocates a method wrapper,
# and every task a supervisor takes is admitted.
ADMIT_OPEN, ADMIT_REJECT, ADMIT_PROBE = Admission.OPEN, Admission.REJECT, Admission.PROBE


class IntensityGate:
    """Counts a supervisor's child failures in a sliding window, across all goals.

    More than ``max_failures`` failures within ``within`` seconds trip the gate. While
    tripped, :meth:`admit` rejects new tasks until the cooldown is over; then it admits
    exactly one probe. :meth:`probe_done` closes the gate on success or trips it again.
    """

    __slots__ = ("_failures", "_policy", "_probing", "_tripped_until")

    def __init__(self, policy: Intensity) -> None:
        self._policy = policy
        self._failures: deque[float] = deque()
        self._tripped_until: float | None = None
        self._probing = False

    @property
    def tripped(self) -> bool:
        return self._tripped_until is not None

    def recent_failures(self, now: float) -> int:
        self._expire(now)
        return len(self._failures)

    def _expire(self, now: float) -> None:
        horizon = now - self._policy.within
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()

    def record_failure(self, now: float) -> bool:
        """Count one child failure; return True when this failure trips the gate."""
        if self.tripped:
            return False
        self._failures.append(now)
        self._expire(now)
        if len(self._failures) > self._policy.max_failures:
            self._trip(now)
            return True
        return False

    def _trip(self, now: float) -> None:
        self._tripped_until = now + self._policy.effective_cooldown
        self._failures.clear()
        self._probing = False

    def admissible(self, now: float) -> bool:
        """Whether :meth:`admit` would let a task through now (for routing)."""
        if self._tripped_until is None:
            return True
        return not self._probing and now >= self._tripped_until

    def admit(self, now: float) -> Admission:
        """Decide for a new task: run it, run it as the probe, or reject it."""
        if self._tripped_until is None:
            return ADMIT_OPEN
        if self._probing or now < self._tripped_until:
            return ADMIT_REJECT
        self._probing = True
        return ADMIT_PROBE

    def probe_done(self, now: float, *, succeeded: bool | None) -> None:
        """End the probe: ``True`` closes the gate, ``False`` trips it again, ``None``
        (the probe was cancelled) lets the next task probe instead."""
        self._probing = False
        if succeeded is None:
            return
        if succeeded:
            self._tripped_until = None
            self._failures.clear()
        else:
            self._trip(now)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """One child's breaker: ``failures`` failures in a row open it for ``cooldown``.

    After the cooldown it is half-open and lets one attempt through at a time; that
    attempt's success closes it and its failure opens it again. Every method returns
    the state it moved to, or ``None`` when the state did not change.
    """

    __slots__ = ("_consecutive", "_opened_until", "_policy", "_state", "_trial", "clean", "closed")

    def __init__(self, policy: Breaker) -> None:
        self._policy = policy
        self._state = BreakerState.CLOSED
        #: Whether the state is CLOSED: routing asks this once per child per attempt.
        self.closed = True
        #: CLOSED with no failure since the last success: then neither :meth:`begin` nor
        #: :meth:`success` would change anything, and the hot path skips both calls.
        self.clean = True
        self._consecutive = 0
        self._opened_until = 0.0
        self._trial = False

    def state(self, now: float) -> BreakerState:
        return self._state

    def refresh(self, now: float) -> BreakerState | None:
        """Move OPEN to HALF_OPEN once the cooldown is over."""
        if self._state is BreakerState.OPEN and now >= self._opened_until:
            self._state = BreakerState.HALF_OPEN
            self._trial = False
            return self._state
        return None

    def available(self, now: float) -> bool:
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            return False
        return not self._trial

    def begin(self) -> None:
        """An attempt starts on the child; in HALF_OPEN it is the trial."""
        if self._state is BreakerState.HALF_OPEN:
            self._trial = True

    def success(self) -> BreakerState | None:
        self._consecutive = 0
        self._trial = False
        self.clean = True
        if self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self.closed = True
            return self._state
        return None

    def failure(self, now: float) -> BreakerState | None:
        self._consecutive += 1
        self._trial = False
        self.clean = False
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._consecutive >= self._policy.failures
        ):
            self._state = BreakerState.OPEN
            self.closed = False
            self._opened_until = now + self._policy.cooldown
            return self._state
        return None

    def cancelled(self) -> None:
        """The attempt was cancelled: neither success nor failure; free the trial slot."""
        self._trial = False
