"""A tree: the validated definition users run goals through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from overstory._errors import DefinitionError
from overstory.hierarchy._blueprint import NodeDef, build
from overstory.hierarchy._budget import Budget
from overstory.hierarchy._outcome import Outcome
from overstory.hierarchy._plan import check_name
from overstory.hierarchy._review import Reviewer
from overstory.hierarchy._runner import Runner, open_runner
from overstory.hierarchy._spec import SupervisorSpec
from overstory.leaves._agent import AgentSpec
from overstory.supervisors._events import EventSink
from overstory.telemetry._hooks import Instrumentation

__all__ = ["Tree"]


class Tree:
    """A named supervisor tree, validated when it is built.

    Raises :class:`DefinitionError` naming the node path (``agency/director/sales``) for
    any problem: bad or duplicate names, empty teams, unknown step targets or
    dependencies, dependency cycles, a child that is not an async callable, agent or
    supervisor. Policies reject nonsense values when they are constructed.
    ``reviewer`` is the default reviewer for review points.
    """

    __slots__ = ("blueprint", "description", "name", "reviewer", "root")

    def __init__(
        self,
        name: str,
        root: SupervisorSpec,
        *,
        description: str = "",
        reviewer: Reviewer | None = None,
    ) -> None:
        if (problem := check_name("tree", name)) is not None:
            raise DefinitionError("", problem)
        self.name = name
        self.root = root
        self.description = description
        self.reviewer = reviewer
        self.blueprint: NodeDef = build(name, root)

    def __repr__(self) -> str:
        return f"<Tree {self.name!r}: {sum(1 for _ in self.walk())} nodes>"

    def walk(self) -> Iterator[NodeDef]:
        """Every node, depth first in declared order (the agents' start order)."""
        return self.blueprint.walk()

    def find(self, path: str) -> NodeDef:
        """The node at ``path`` (``"agency/director/sales"``); ``KeyError`` if none."""
        for node in self.walk():
            if node.path == path:
                return node
        raise KeyError(path)

    @property
    def needs_review(self) -> bool:
        return self.blueprint.needs_review

    def running(
        self,
        *,
        reviewer: Reviewer | None = None,
        on_event: EventSink | None = None,
        instrumentation: Instrumentation | None = None,
        seed: int | None = None,
        max_concurrent: int | None = None,
        grace: float = 0.0,
        start_failure: str = "fail",
    ) -> AbstractAsyncContextManager[Runner]:
        """Start the tree's agents and accept goals until the block ends.

        On entry every stateful agent instance is started, in depth-first order. A
        ``start()`` that raises stops what already started (in reverse) and raises
        :class:`StartError` naming the agent, unless ``start_failure="continue"``: then the
        instance keeps retrying with backoff and routing skips it until it is live.
        A tree with review points and no reviewer raises :class:`ConfigurationError`.

        On exit intake stops, in-flight goals get ``grace`` seconds to finish, the rest
        are cancelled (their outcome is CANCELLED), and the agents are stopped in reverse
        start order, each ``stop()`` shielded and bounded by its ``stop_timeout``;
        ``runner.report`` then lists the instances that overran or raised. An exception
        from the block arrives wrapped in an exception group, as from a trio nursery.

        ``seed`` seeds the backoff jitter; ``max_concurrent`` bounds goals running at
        once (the rest wait, and start as slots free up, in the order they were
        submitted; a goal's ``timeout`` and ``cancel()`` apply while it waits, and a goal
        that ends waiting gives up its place); ``on_event`` receives every
        supervision event; ``instrumentation`` defaults to what ``overstory.telemetry``
        installed.
        """
        return open_runner(
            tree=self.name,
            blueprint=self.blueprint,
            reviewer=reviewer or self.reviewer,
            on_event=on_event,
            instrumentation=instrumentation,
            seed=seed,
            max_concurrent=max_concurrent,
            grace=grace,
            start_failure=start_failure,
        )

    async def run(
        self,
        goal: str,
        *,
        input: Any = None,
        timeout: float | None = None,
        reviewer: Reviewer | None = None,
        budget: Budget | None = None,
        **options: Any,
    ) -> Outcome:
        """Start the tree, run one goal, stop the tree, and return the goal's outcome.

        A failed, cancelled or timed-out goal is an outcome, not an exception. Raises
        what :meth:`running` raises on start. ``KeyboardInterrupt`` cancels everything
        and stops the agents before it propagates, in an exception group as from any
        trio nursery. ``options`` go to :meth:`running`.
        """
        async with self.running(reviewer=reviewer, **options) as runner:
            handle = await runner.submit(goal, input=input, timeout=timeout, budget=budget)
            return await handle.outcome()

    def draw(self) -> str:
        """The tree as text, one node a line, for ``overstory check``."""
        lines = [f"{self.name}" + (f"  — {self.description}" if self.description else "")]
        self._draw(self.blueprint, "", True, lines)
        return "\n".join(lines)

    def _draw(self, node: NodeDef, prefix: str, last: bool, lines: list[str]) -> None:
        branch = "└── " if last else "├── "
        lines.append(f"{prefix}{branch}{node.name}  [{_describe(node)}]")
        spec = node.spec
        extension = "    " if last else "│   "
        if isinstance(spec, SupervisorSpec):
            steps = spec.steps
            if steps is not None:
                for step in steps:
                    bits = [f"step {step.name}: {step.goal}"]
                    if step.to:
                        bits.append(f"to {step.to}")
                    if step.after:
                        bits.append(f"after {', '.join(step.after)}")
                    if step.for_each:
                        bits.append(f"for each {step.for_each}")
                    if step.review:
                        bits.append("review")
                    lines.append(f"{prefix}{extension}· {'; '.join(bits)}")
            elif spec.plan is not None:
                lines.append(f"{prefix}{extension}· plan computed per goal")
        for index, child in enumerate(node.children):
            self._draw(child, prefix + extension, index == len(node.children) - 1, lines)


def _describe(node: NodeDef) -> str:
    spec = node.spec
    parts = [node.layer.value]
    if isinstance(spec, SupervisorSpec):
        parts.append(f"{spec.strategy.value}, {spec.retry.attempts} attempts")
        if spec.timeout is not None:
            parts.append(f"timeout {spec.timeout:g}s")
    elif isinstance(spec, AgentSpec):
        parts.append(f"agent ×{spec.concurrency}, {spec.restart.value}")
    else:
        parts.append("function")
    if node.skills and not isinstance(spec, SupervisorSpec):
        parts.append("skills: " + ", ".join(sorted(node.skills)))
    if node.description:
        parts.append(node.description)
    return "; ".join(parts)
