"""What a plan's scheduler keeps per step and per unit of work while one plan runs."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from overstory.hierarchy._plan import Step
from overstory.supervisors._decisions import Track

__all__ = ["Phase", "StepRun", "Unit", "resume_track"]


class Phase(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    REVIEWING = "reviewing"
    DONE = "done"


@attrs.define(eq=False)
class StepRun:
    """One step of a running plan: its phase, its units and what they produced."""

    step: Step
    index: int
    phase: Phase = Phase.WAITING
    units: list[Unit] | None = None
    output: Any = None
    feedback: list[str] = attrs.field(factory=list)
    reviews: int = 0
    runs: int = 0
    running: int = 0
    # Units neither done nor running: the only ones the scheduler's launch looks at.
    idle: int = 0
    not_before: float = -math.inf
    # Units done in the current run of the step.
    finished: int = 0
    # What every unit of the current run hands its agent (set when the step expands).
    outputs: Mapping[str, Any] | None = None
    unit_feedback: tuple[str, ...] = ()
    task_to: str | None = None  # what is left of ``step.to`` below this supervisor
    review_scope: trio.CancelScope | None = None
    review_label: str | None = None
    # Records of units whose step waits for review; written once the reviewer answers.
    unreviewed: list[tuple[Unit, str | None, float, bool]] = attrs.field(factory=list)


@attrs.define(eq=False, kw_only=True)
class Unit(Track):
    """One unit of work, and (as a :class:`Track`) its routing and retry state: one
    object per unit, since a tree at scale holds a hundred thousand of them at once.

    A re-run of its step makes a new unit that starts from the old one's track."""

    run: StepRun
    item: int | None
    input: Any
    eligible_at: float
    active: bool = False  # an attempt is running
    scope: trio.CancelScope | None = None  # only when a group restart may cancel it
    done: bool = False
    stale: bool = False
    output: Any = None
    started: float | None = None  # when the unit's first attempt started

    @property
    def key(self) -> str:
        """The unit's name within its plan: the step's, with ``[i]`` for fan-out item i
        (made when asked: most plans never need it)."""
        step = self.run.step
        return step.name if step.for_each is None else f"{step.name}[{self.item}]"


def resume_track(unit: Unit, previous: Unit | None) -> None:
    """Start ``unit`` (a re-run of its step) from where ``previous`` left its routing."""
    if previous is not None:
        unit.ranked = previous.ranked
        unit.index = previous.index
        unit.attempt = previous.attempt
        unit.total = previous.total
        unit.previous = previous.previous
