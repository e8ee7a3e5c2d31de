"""Hand-offs: a child's output that names other work, routed among the supervisor's
children until one of them gives an output, or passed up when none fits.

Functions of the :class:`~overstory.supervisors._supervisor.SupervisorNode` (see
:mod:`overstory.supervisors._attempts` for why functions); each hop runs through
:meth:`~overstory.supervisors._supervisor.SupervisorNode.try_once` like any other step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from overstory._errors import HandoffLoop
from overstory.hierarchy._plan import Step
from overstory.hierarchy._task import SAME_INPUT, Handoff, Task
from overstory.supervisors._decisions import Done, Escalate, Track, UpwardHandoff
from overstory.supervisors._events import EventKind
from overstory.supervisors._runtime import GoalRun, Node
from overstory.telemetry._hooks import SpanHook

if TYPE_CHECKING:  # the supervisor module imports this one at run time
    from overstory.supervisors._supervisor import SupervisorNode

__all__ = ["follow_handoff"]


async def follow_handoff(
    node: SupervisorNode,
    output: Handoff | UpwardHandoff,
    sender: Node | None,
    task: Task,
    run: GoalRun,
    span: SpanHook,
    outputs: Mapping[str, Any],
    feedback: tuple[str, ...],
) -> Any:
    """Route hand-offs among this supervisor's children until one gives an output.

    Returns an :class:`UpwardHandoff` when no child fits; raises
    :class:`HandoffLoop` past ``max_handoffs`` and the target's escalation if the
    target fails.
    """
    hops = task.handoffs
    origin = sender.definition.path if sender is not None else node.path
    exclude = sender.definition.name if sender is not None else None
    result: Any = output
    while isinstance(result, Handoff | UpwardHandoff):
        if isinstance(result, UpwardHandoff):
            handoff, hops, origin = result.handoff, result.hops, result.origin
        else:
            handoff = result
            hops += 1
        if hops > node.spec.max_handoffs:
            raise HandoffLoop(node.path, f"more than {node.spec.max_handoffs} hand-offs in a row")
        target = handoff.to.split("/", 1)[0] if handoff.to else None
        step = Step(
            task.step or node.definition.name,
            handoff.goal or task.goal,
            to=handoff.to if target in node.children else None,
            skills=handoff.skills or task.skills,
        )
        if target is not None and target not in node.children:
            return UpwardHandoff(handoff, hops, origin)
        ranked = await node.rank(step, exclude=None if target else exclude)
        if not ranked or (target is not None and ranked[0] != target):
            return UpwardHandoff(handoff, hops, origin)
        node.runtime.report(
            span,
            EventKind.HANDOFF,
            node.path,
            goal_id=run.goal_id,
            step=task.step,
            agent=origin,
            next_agent=f"{node.path}/{ranked[0]}",
            message=handoff.reason,
        )
        handed = Task(
            goal=step.goal,
            goal_id=run.goal_id,
            input=task.input if handoff.input is SAME_INPUT else handoff.input,
            step=task.step,
            skills=step.skills,
            to=handoff.to.split("/", 1)[1] if handoff.to and "/" in handoff.to else None,
            item=task.item,
            handoffs=hops,
        )
        result, origin, exclude = await _complete(
            node, Track(step=step.name, ranked=ranked), step, handed, run, span, outputs, feedback
        )
    return result


async def _complete(
    node: SupervisorNode,
    track: Track,
    step: Step,
    task: Task,
    run: GoalRun,
    span: SpanHook,
    outputs: Mapping[str, Any],
    feedback: tuple[str, ...],
) -> tuple[Any, str, str | None]:
    while True:
        # follow=False: a hand-off the target returns comes back to follow_handoff's
        # loop, so a chain of any length runs in constant stack depth.
        decision = await node.try_once(
            track, step, task, run, span, outputs=outputs, feedback=feedback, follow=False
        )
        if isinstance(decision, Done):
            agent = decision.agent or node.path
            return decision.output, agent, agent.rsplit("/", 1)[-1]
        if isinstance(decision, Escalate):
            try:
                raise decision.error
            finally:
                # The error's traceback holds this frame: no local may hold the error.
                del decision
        await trio.sleep(decision.delay)
