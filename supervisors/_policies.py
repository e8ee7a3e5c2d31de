"""Supervision policies: frozen, validated records that say how failures are handled.

They hold no state; the runtime state that applies them lives in ``_backoff``,
``_intensity`` and ``_breaker``.
"""

from __future__ import annotations

import enum
import math

import attrs

from overstory._checks import (
    at_least,
    finite_non_negative,
    optional_positive,
    positive,
    to_tuple,
)

__all__ = ["Backoff", "Breaker", "Intensity", "Restart", "Retry", "Strategy"]


class Strategy(enum.Enum):
    """Which steps of a plan re-run when one step's attempt fails (OTP's restart strategies)."""

    #: Only the failed step is retried or reassigned; the others carry on.
    ONE_FOR_ONE = "one_for_one"
    #: Every step of the plan is stopped, its output dropped, and the whole plan re-runs.
    ONE_FOR_ALL = "one_for_all"
    #: The failed step and every step after it in plan order re-run; earlier steps carry on.
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    """When a stateful agent instance is restarted (``stop()`` then ``start()``).

    ============  ===============  ===============  ==================
    type          handle returns   handle cancelled  handle raises
    ============  ===============  ===============  ==================
    PERMANENT     keeps serving    restarted         restarted
    TRANSIENT     keeps serving    keeps serving     restarted
    TEMPORARY     keeps serving    keeps serving     removed for good
    ============  ===============  ===============  ==================
    """

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff with a cap and random jitter (Akka's ``BackoffSupervisor``).

    The delay before retry ``n`` (0 for the first retry) is
    ``min(cap, initial * multiplier**n) * (1 + jitter * u)`` with ``u`` drawn uniformly
    from ``[0, 1)``: never below the exponential schedule, never above ``cap * (1 + jitter)``.
    A stateful agent's restart counter resets after it has run ``reset_after`` seconds
    without crashing.
    """

    initial: float = attrs.field(default=0.1, validator=finite_non_negative())
    cap: float = attrs.field(default=10.0, validator=finite_non_negative())
    multiplier: float = attrs.field(default=2.0, validator=at_least(1.0))
    jitter: float = attrs.field(default=0.1, validator=[finite_non_negative(), at_least(0.0)])
    reset_after: float = attrs.field(default=30.0, validator=positive())

    def __attrs_post_init__(self) -> None:
        if self.cap < self.initial:
            raise ValueError(
                f"Backoff.cap ({self.cap!r}) must not be below initial ({self.initial!r})"
            )
        if self.jitter > 1:
            raise ValueError(f"Backoff.jitter must be between 0 and 1, got {self.jitter!r}")

    def base_delay(self, retry: int) -> float:
        """The delay before retry number ``retry`` (0-based) without jitter."""
        if retry < 0:
            raise ValueError(f"retry must be >= 0, got {retry}")
        if retry == 0 or self.initial == 0 or self.multiplier == 1:
            return self.initial  # a schedule that never grows (initial <= cap)
        # Compare logarithms first: multiplier**retry overflows for a long crash loop, and
        # stepping through the retries one by one made every restart cost O(retries).
        if retry * math.log(self.multiplier) >= math.log(self.cap / self.initial):
            return self.cap
        return min(self.cap, self.initial * self.multiplier**retry)

    def delay(self, retry: int, u: float) -> float:
        """The delay before retry ``retry`` for a uniform draw ``u`` in ``[0, 1)``."""
        return self.base_delay(retry) * (1.0 + self.jitter * u)


#: A backoff of zero: retry at once.
NO_BACKOFF = Backoff(initial=0.0, cap=0.0, jitter=0.0)


@attrs.frozen(kw_only=True)
class Retry:
    """How often a failed attempt is retried on the same child before it is reassigned.

    ``attempts`` counts the first try: ``attempts=1`` means no retry. ``fatal`` lists
    exception types that are never retried or reassigned (like raising :class:`Fatal`).
    ``reassign=False`` keeps a unit of work on the child routing chose: once that child
    has used its attempts, has its breaker open, or (a team) escalated, the supervisor
    escalates instead of trying the next candidate (OTP's supervisors never reassign).
    """

    attempts: int = attrs.field(default=3, validator=at_least(1, whole=True))
    backoff: Backoff = attrs.field(factory=Backoff, validator=attrs.validators.instance_of(Backoff))
    fatal: tuple[type[BaseException], ...] = attrs.field(default=(), converter=to_tuple)
    reassign: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ValueError(f"Retry.attempts must be a whole number, got {self.attempts!r}")
        for kind in self.fatal:
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                raise ValueError(f"Retry.fatal must list Exception subclasses, got {kind!r}")


@attrs.frozen(kw_only=True)
class Intensity:
    """Restart intensity (OTP's ``intensity``/``period``), counted per supervisor over all goals.

    More than ``max_failures`` child failures within ``within`` seconds trip the supervisor:
    it escalates every failure and every new task at once instead of retrying. After
    ``cooldown`` seconds (default: ``within``) one probe task is let through; its success
    closes the supervisor again, its failure trips it anew.
    """

    max_failures: int = attrs.field(default=10, validator=at_least(0, whole=True))
    within: float = attrs.field(default=60.0, validator=positive())
    cooldown: float | None = attrs.field(default=None, validator=optional_positive())

    @property
    def effective_cooldown(self) -> float:
        return self.within if self.cooldown is None else self.cooldown


@attrs.frozen(kw_only=True)
class Breaker:
    """A per-child circuit breaker: ``failures`` failures in a row open it.

    While open, routing skips the child. After ``cooldown`` seconds it is half-open:
    one task is let through; success closes it, failure opens it again.
    """

    failures: int = attrs.field(default=5, validator=at_least(1, whole=True))
    cooldown: float = attrs.field(default=30.0, validator=positive())
