"""Plans: steps, their validation as a DAG, and the order they are considered in."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from overstory._checks import at_least, to_names, to_skills
from overstory.hierarchy._task import Task

if TYPE_CHECKING:
    from overstory.hierarchy._context import Context

__all__ = ["NAME_PATTERN", "PlanFunction", "Step", "check_name", "validate_plan"]

#: Names of nodes and steps: they become path segments, so no ``/`` and no spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def check_name(kind: str, name: object) -> str | None:
    """Return what is wrong with ``name`` as a node or step name, or ``None``."""
    if not isinstance(name, str):
        return f"{kind} name must be a string, got {name!r}"
    if not NAME_PATTERN.match(name):
        return (
            f"{kind} name {name!r} is not valid: use letters, digits, '_', '-' and '.', "
            "starting with a letter, digit or '_'"
        )
    return None


@attrs.frozen(cache_hash=True)
class Step:
    """One step of a plan: a plain-language goal handed to one child.

    ``to`` names the child to try first (``"sales"``, or ``"sales/crm"`` to route inside
    that team too); otherwise routing picks by ``skills`` and by the goal's text.
    ``after`` lists the steps whose outputs this one needs; it starts when they are done
    and sees their outputs in ``ctx.outputs``. ``review`` holds the output for a reviewer
    before it is handed on. ``for_each`` fans the step out over a list, one task per item
    in parallel: ``"input"`` (the goal's input is the list), ``"input.KEY"``, ``"STEP"`` or
    ``"STEP.KEY"`` (a dependency's output); the step's output is the list of item outputs.
    ``max_parallel`` bounds the items of a fan-out running at once.
    """

    name: str
    goal: str
    to: str | None = attrs.field(default=None, kw_only=True)
    after: tuple[str, ...] = attrs.field(default=(), converter=to_names, kw_only=True)
    skills: frozenset[str] = attrs.field(default=frozenset(), converter=to_skills, kw_only=True)
    review: bool = attrs.field(default=False, kw_only=True)
    for_each: str | None = attrs.field(default=None, kw_only=True)
    max_parallel: int | None = attrs.field(
        default=None, kw_only=True, validator=attrs.validators.optional(at_least(1, whole=True))
    )

    @property
    def source(self) -> tuple[str, str | None] | None:
        """``for_each`` split into (where, key): ``("input", "competitors")``."""
        if self.for_each is None:
            return None
        where, _, key = self.for_each.partition(".")
        return where, key or None


PlanFunction = Callable[[Task, "Context"], Awaitable[Sequence[Step]]]


def validate_plan(
    steps: Iterable[object],
    children: Collection[str],
    resolves: Callable[[str], bool] | None = None,
) -> tuple[Step, ...]:
    """Check ``steps`` form a DAG over ``children`` and return them in plan order.

    Plan order is a topological order that keeps the given order wherever the
    dependencies allow it. Raises ``ValueError`` naming the first problem found:
    a non-Step, a bad or duplicate name, an unknown ``to`` or dependency, a bad
    ``for_each`` source, or a cycle (listing its steps). With ``resolves``, a ``to``
    must also be a route it accepts (``team/agent`` naming a node below a child).
    """
    plan = list(steps)
    if not plan:
        raise ValueError("the plan has no steps")
    seen: dict[str, Step] = {}
    for index, step in enumerate(plan):
        if not isinstance(step, Step):
            raise ValueError(f"plan item {index} is not an ov.Step: {step!r}")
        if (problem := check_name("step", step.name)) is not None:
            raise ValueError(problem)
        if step.name in seen:
            raise ValueError(f"duplicate step name {step.name!r}")
        if not isinstance(step.goal, str) or not step.goal.strip():
            raise ValueError(f"step {step.name!r} needs a non-empty goal text")
        seen[step.name] = step
    for step in plan:
        assert isinstance(step, Step)
        if step.to is not None and step.to.split("/", 1)[0] not in children:
            raise ValueError(
                f"step {step.name!r} is routed to {step.to!r}, which is not a child "
                f"(children: {', '.join(sorted(children))})"
            )
        if step.to is not None and resolves is not None and not resolves(step.to):
            raise ValueError(
                f"step {step.name!r} is routed to {step.to!r}, which names no node below "
                "this supervisor"
            )
        for dependency in step.after:
            if dependency == step.name:
                raise ValueError(f"step {step.name!r} depends on itself")
            if dependency not in seen:
                raise ValueError(f"step {step.name!r} runs after unknown step {dependency!r}")
        if (source := step.source) is not None:
            where, _ = source
            if where != "input" and where not in step.after:
                raise ValueError(
                    f"step {step.name!r} fans out over {step.for_each!r}: "
                    f"use 'input', 'input.KEY', or a step listed in after="
                )
    return _topological(plan)  # type: ignore[arg-type]


def _topological(plan: list[Step]) -> tuple[Step, ...]:
    remaining = {step.name: set(step.after) for step in plan}
    ordered: list[Step] = []
    while remaining:
        ready = [step for step in plan if remaining.get(step.name) == set()]
        if not ready:
            raise ValueError(f"the plan has a dependency cycle among {_cycle(plan, remaining)}")
        # Take the first ready step in the given order, so plan order follows the list.
        first = ready[0]
        ordered.append(first)
        del remaining[first.name]
        for dependencies in remaining.values():
            dependencies.discard(first.name)
    return tuple(ordered)


def _cycle(plan: list[Step], remaining: dict[str, set[str]]) -> str:
    # Walk dependencies from any remaining step until one repeats: that loop is a cycle.
    start = next(step.name for step in plan if step.name in remaining)
    trail: list[str] = []
    current = start
    while current not in trail:
        trail.append(current)
        current = sorted(remaining[current])[0]
    loop = [*trail[trail.index(current) :], current]
    return " -> ".join(repr(name) for name in loop)
