"""The records that flow down the tree: a task, and a hand-off a leaf may return."""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

from overstory._checks import to_skills

__all__ = ["SAME_INPUT", "Handoff", "Task"]


class _Same(enum.Enum):
    SAME_INPUT = "same input"


#: A hand-off's default input: the handing-off task's own input.
SAME_INPUT: Final = _Same.SAME_INPUT


@attrs.frozen(kw_only=True)
class Task:
    """One unit of work handed to an agent.

    ``goal`` says in plain language what to do at this level (the goal's text at the
    root, a step's text below it); ``input`` is the goal's input, or one item of a
    fan-out. ``step`` names the plan step the task belongs to, ``skills`` the skills it
    asks for, ``to`` what is left of an explicit route (``"sales/crm"`` below the root),
    ``item`` its index in a fan-out, and ``handoffs`` how many hand-offs led to it.
    """

    goal: str
    goal_id: str
    input: Any = None
    step: str | None = None
    skills: frozenset[str] = attrs.field(default=frozenset(), converter=to_skills)
    to: str | None = None
    item: int | None = None
    handoffs: int = 0


@attrs.frozen(kw_only=True)
class Handoff:
    """Returned by a leaf to pass its job to a peer instead of finishing it.

    The leaf's supervisor routes the hand-off among its children (``to`` names one, or
    routing by ``goal`` and ``skills`` picks one); a supervisor with no fitting child
    passes it up to its parent. The result of the peer becomes the step's output. A chain
    longer than the supervisor's ``max_handoffs`` fails with :class:`HandoffLoop`.
    ``goal`` and ``input`` default to the handing-off task's own.
    """

    to: str | None = None
    goal: str | None = None
    input: Any = SAME_INPUT
    skills: frozenset[str] = attrs.field(default=frozenset(), converter=to_skills)
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        if self.to is None and self.goal is None and not self.skills:
            raise ValueError("Handoff needs a target: give to=, goal= or skills=")
