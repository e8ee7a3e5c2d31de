"""One attempt of one child, as a supervisor runs it: its context, span and breaker.

Functions of the :class:`~overstory.supervisors._supervisor.SupervisorNode` rather than
methods so that the supervisor module keeps to routing and the decision loop; they read
and update the node's own state (breakers, stats, span attributes) and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from overstory._errors import AttemptTimeout, BudgetExhausted
from overstory.hierarchy._context import Context, using_context
from overstory.hierarchy._layer import Layer
from overstory.hierarchy._task import Task
from overstory.supervisors._decisions import Track
from overstory.supervisors._runtime import GoalRun, Node
from overstory.telemetry._hooks import SpanHook

if TYPE_CHECKING:  # the supervisor module imports this one at run time
    from overstory.supervisors._supervisor import SupervisorNode

__all__ = ["attempt"]


async def attempt(
    node: SupervisorNode,
    child: Node,
    task: Task,
    run: GoalRun,
    *,
    attempt: int,
    outputs: Mapping[str, Any],
    feedback: tuple[str, ...],
    track: Track,
    span: SpanHook,
) -> Any:
    """Run one attempt of ``child`` under its timeout and its own span.

    The span is linked to the unit's previous attempt and becomes ``track.previous``
    (whether the attempt succeeds or not). Updates the child's breaker. Raises the
    child's failure, or :class:`AttemptTimeout`; cancellation from outside passes
    through untouched.
    """
    definition = child.definition
    ctx = Context(
        task=task,
        goal=run.goal,
        goal_id=run.goal_id,
        path=definition.path,
        attempt=attempt,
        outputs=outputs,
        memory=run.memory,
        feedback=feedback,
        layer=definition.layer.value,
        usage=run.usage,
    )
    if definition.layer is Layer.LEAF:
        run.usage.charge(path=definition.path, layer=definition.layer.value, attempts=1)
    breaker = node.breakers.get(definition.name)
    if breaker is not None:
        breaker.begin()
    stats = node.stats[definition.name]
    stats[0] += 1
    settled = False
    attributes = node.span_attributes[definition.name]
    if task.item is not None or task.handoffs:
        attributes = dict(attributes)
        if task.item is not None:
            attributes["overstory.item"] = task.item
        if task.handoffs:
            attributes["overstory.handoffs"] = task.handoffs
    try:
        with (
            using_context(ctx),
            node.runtime.instrumentation.invoke(
                layer=definition.layer,
                name=definition.name,
                path=definition.path,
                description=definition.description,
                goal_id=run.goal_id,
                step=task.step,
                attempt=attempt,
                previous=track.previous,
                attributes=attributes,
            ) as child_span,
        ):
            track.previous = child_span
            try:
                result = await _run_bounded(child, task, ctx, run, child_span)
            except BudgetExhausted as exc:
                # The goal ran out of budget: not the child's fault, so no breaker.
                child_span.record_failure(exc)
                raise
            except Exception as exc:
                child_span.record_failure(exc)
                stats[2] += 1
                if breaker is not None:
                    settled = True
                    moved = breaker.failure(trio.current_time())
                    if moved is not None:
                        node.breaker_event(definition.name, moved, span)
                raise
        stats[1] += 1
        if breaker is not None:
            settled = True
            moved = breaker.success()
            if moved is not None:
                node.breaker_event(definition.name, moved, span)
        return result
    finally:
        stats[0] -= 1
        if breaker is not None and not settled:
            breaker.cancelled()


async def _run_bounded(child: Node, task: Task, ctx: Context, run: GoalRun, span: SpanHook) -> Any:
    timeout = child.definition.timeout
    if timeout is None:
        return await child.execute(task, ctx, run, span)
    with trio.move_on_after(timeout) as bound:
        return await child.execute(task, ctx, run, span)
    assert bound.cancelled_caught
    raise AttemptTimeout(child.definition.path, f"attempt timed out after {timeout:g} s")
