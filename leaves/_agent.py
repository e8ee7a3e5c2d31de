"""Stateful leaf agents: a class with a lifecycle, instantiated by its supervisor."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from overstory._checks import at_least, optional_positive, positive, to_skills
from overstory.hierarchy._context import Context
from overstory.hierarchy._task import Task
from overstory.leaves._leaf import first_paragraph
from overstory.supervisors._policies import Backoff, Restart

__all__ = ["Agent", "AgentSpec"]


class Agent:
    """Base class of stateful leaf agents.

    Subclass it, set the class attributes you need, and implement :meth:`handle`. The
    supervisor creates ``concurrency`` instances when the tree starts, calls
    :meth:`start` on each before its first task, hands each instance one task at a time,
    and calls :meth:`stop` when the tree stops, in reverse start order.

    When :meth:`handle` raises, the instance is restarted (``stop()`` shielded under
    ``stop_timeout``, then ``start()``) according to ``restart``; a ``start()`` that
    raises is retried with ``backoff`` and counts toward the supervisor's intensity.
    :meth:`handle` runs inside the goal's cancel scope, so cancelling the goal cancels it.
    """

    #: The agent's name in paths; defaults to the class name.
    name: ClassVar[str | None] = None
    #: Plain-language description used for routing; defaults to the docstring's first paragraph.
    description: ClassVar[str | None] = None
    skills: ClassVar[frozenset[str] | set[str]] = frozenset()
    #: How many instances run, each handling one task at a time.
    concurrency: ClassVar[int] = 1
    #: How many tasks may wait for a free instance before new ones fail as unavailable.
    queue_limit: ClassVar[int] = 100
    restart: ClassVar[Restart] = Restart.PERMANENT
    #: Bound on one attempt, in seconds (``None``: only enclosing deadlines apply).
    timeout: ClassVar[float | None] = None
    #: Bound on ``start()``; one that runs longer counts as a failed start.
    start_timeout: ClassVar[float] = 60.0
    #: Bound on ``stop()``, which runs shielded from cancellation.
    stop_timeout: ClassVar[float] = 5.0
    #: Backoff between restarts of a crashed instance.
    backoff: ClassVar[Backoff] = Backoff()

    async def start(self) -> None:
        """Open clients, load models. Runs before the instance's first task."""

    async def handle(self, task: Task, ctx: Context) -> Any:
        """Do one task and return its output (JSON-serialisable), or an ``ov.Handoff``."""
        raise NotImplementedError(f"{type(self).__name__} must implement handle()")

    async def stop(self) -> None:
        """Release what ``start()`` opened. Runs shielded, bounded by ``stop_timeout``."""


@attrs.frozen(kw_only=True)
class AgentSpec:
    """An :class:`Agent` subclass with its settings resolved; built by the tree."""

    cls: type[Agent]
    name: str
    description: str
    skills: frozenset[str] = attrs.field(converter=to_skills)
    concurrency: int = attrs.field(validator=at_least(1, whole=True))
    queue_limit: int = attrs.field(validator=at_least(0, whole=True))
    restart: Restart = attrs.field(validator=attrs.validators.instance_of(Restart))
    timeout: float | None = attrs.field(validator=optional_positive())
    start_timeout: float = attrs.field(validator=positive())
    stop_timeout: float = attrs.field(validator=positive())
    backoff: Backoff = attrs.field(validator=attrs.validators.instance_of(Backoff))

    @classmethod
    def of(cls, agent: type[Agent], **overrides: Any) -> AgentSpec:
        """Resolve ``agent``'s class attributes; ``overrides`` replace any of them."""
        restart = overrides.pop("restart", agent.restart)
        fields: dict[str, Any] = {
            "name": agent.name or agent.__name__,
            "description": (
                first_paragraph(agent.__doc__) if agent.description is None else agent.description
            ),
            "skills": agent.skills,
            "concurrency": agent.concurrency,
            "queue_limit": agent.queue_limit,
            "restart": Restart(restart) if isinstance(restart, str) else restart,
            "timeout": agent.timeout,
            "start_timeout": agent.start_timeout,
            "stop_timeout": agent.stop_timeout,
            "backoff": agent.backoff,
        }
        fields.update(overrides)
        return cls(cls=agent, **fields)
