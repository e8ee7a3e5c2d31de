"""Supervisor specs: the strategic and tactical nodes a user writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from overstory._checks import at_least, optional_positive, to_skills, to_tuple
from overstory.hierarchy._layer import Layer
from overstory.hierarchy._plan import PlanFunction, Step
from overstory.hierarchy._task import Task
from overstory.supervisors._policies import Breaker, Intensity, Retry, Strategy

if TYPE_CHECKING:
    from overstory.hierarchy._context import Context
    from overstory.hierarchy._routing import Router

__all__ = ["Aggregator", "Strategic", "SupervisorSpec", "Tactical"]

Aggregator = Callable[[Mapping[str, Any], Task, "Context"], Awaitable[Any]]


def _plan(value: Any) -> Any:
    # A list of steps is frozen into a tuple; a plan function is kept as it is.
    if value is None or callable(value):
        return value
    return tuple(value)


def _strategy(value: Any) -> Strategy:
    try:
        return Strategy(value)
    except ValueError:
        choices = ", ".join(repr(s.value) for s in Strategy)
        raise ValueError(f"strategy must be one of {choices}, got {value!r}") from None


def _instance_of(kind: type, label: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, kind):
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} must be {label}, got {value!r}"
            )

    return check


@attrs.frozen
class SupervisorSpec:
    """What strategic and tactical supervisors share; see :class:`Strategic`.

    ``plan`` is a list of :class:`Step` or an async ``(task, ctx) -> steps`` function
    computed per goal; without a plan the whole task is one step. ``router`` ranks the
    children for a step (default: the lexical router). ``retry`` bounds attempts on one
    child, ``intensity`` the failures the supervisor tolerates, ``breaker`` the failures
    in a row of one child before routing skips it (``None``: no breaker). ``timeout``
    bounds each task the parent hands this supervisor. ``max_parallel`` bounds the steps
    (and fan-out items) running at once for one goal. ``review`` holds this supervisor's
    output for a reviewer. ``aggregate`` turns step outputs into the supervisor's output
    (default: a mapping of step name to output; a one-step plan returns its output).
    """

    layer: ClassVar[Layer]

    name: str
    description: str = ""
    children: tuple[Any, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    plan: tuple[Step, ...] | PlanFunction | None = attrs.field(
        default=None, converter=_plan, kw_only=True
    )
    router: Router | None = attrs.field(default=None, kw_only=True)
    retry: Retry = attrs.field(
        factory=Retry, kw_only=True, validator=_instance_of(Retry, "an ov.Retry")
    )
    intensity: Intensity = attrs.field(
        factory=Intensity, kw_only=True, validator=_instance_of(Intensity, "an ov.Intensity")
    )
    breaker: Breaker | None = attrs.field(
        factory=Breaker,
        kw_only=True,
        validator=attrs.validators.optional(_instance_of(Breaker, "an ov.Breaker")),
    )
    strategy: Strategy = attrs.field(
        default=Strategy.ONE_FOR_ONE, converter=_strategy, kw_only=True
    )
    timeout: float | None = attrs.field(default=None, kw_only=True, validator=optional_positive())
    max_parallel: int = attrs.field(default=64, kw_only=True, validator=at_least(1, whole=True))
    review: bool = attrs.field(default=False, kw_only=True)
    skills: frozenset[str] = attrs.field(default=frozenset(), converter=to_skills, kw_only=True)
    aggregate: Aggregator | None = attrs.field(default=None, kw_only=True)
    max_handoffs: int = attrs.field(default=8, kw_only=True, validator=at_least(0, whole=True))
    max_review_rounds: int = attrs.field(default=3, kw_only=True, validator=at_least(1, whole=True))

    @property
    def steps(self) -> Sequence[Step] | None:
        """The static plan, or ``None`` for a dynamic plan or no plan."""
        return self.plan if isinstance(self.plan, tuple) else None


@attrs.frozen
class Strategic(SupervisorSpec):
    """A supervisor that plans a goal into steps and hands each step to a team.

    ``replans`` lets a plan function plan again when a step escalates: at most that many
    times per task, with each failure described in the plan function's ``ctx.feedback``.
    Fatal failures and a tripped supervisor are never re-planned; a step that fails after
    the last re-plan escalates as usual.
    """

    layer: ClassVar[Layer] = Layer.STRATEGIC

    replans: int = attrs.field(default=0, kw_only=True, validator=at_least(0, whole=True))

    def __attrs_post_init__(self) -> None:
        if self.replans and not callable(self.plan):
            raise ValueError(
                f"Strategic.replans needs plan= to be a plan function, got {self.plan!r}"
            )


@attrs.frozen
class Tactical(SupervisorSpec):
    """A supervisor that runs a team: it routes each step to the leaf that fits it best."""

    layer: ClassVar[Layer] = Layer.TACTICAL
