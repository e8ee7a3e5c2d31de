"""One attempt at a unit of work, as a supervisor runs it: routing, context, span, breaker.

Functions of the :class:`~overstory.supervisors._supervisor.SupervisorNode` rather than
methods so that the supervisor module keeps to planning and routing; they read and
update the node's own state (breakers, stats, span attributes) and nothing else.

This is the hot path of every tree: each leaf call runs through :func:`try_once` once
per attempt. It is one coroutine on purpose: every nested ``await`` is a coroutine
object and a frame per call, and a tree at scale keeps a hundred thousand of them alive.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import trio

from overstory._errors import (
    AttemptTimeout,
    BudgetExhausted,
    CandidatesExhausted,
    Escalation,
    Failure,
    NoCandidate,
)
from overstory._trusted import trusted_constructor
from overstory.hierarchy._context import CONTEXTS, Context, restore_context
from overstory.hierarchy._layer import Layer
from overstory.hierarchy._plan import Step
from overstory.hierarchy._task import Handoff, Task
from overstory.leaves._runtime import FunctionLeafNode
from overstory.supervisors._decisions import Decision, Done, Escalate, Track, UpwardHandoff
from overstory.supervisors._failures import decide, escalate
from overstory.supervisors._gates import CircuitBreaker
from overstory.supervisors._handoffs import follow_handoff
from overstory.supervisors._runtime import GoalRun, Node
from overstory.telemetry._hooks import NULL_SPAN, SpanHook

if TYPE_CHECKING:  # the supervisor module imports this one at run time
    from overstory.supervisors._supervisor import SupervisorNode

__all__ = ["try_once"]

_HANDOFFS = (Handoff, UpwardHandoff)

# One Context and one Done per attempt, from values already checked.
_new_context = trusted_constructor(Context)
_new_done = trusted_constructor(Done)

# Looked up once: on Python 3.11 an ``Enum.MEMBER`` lookup allocates a method wrapper.
_LEAF = Layer.LEAF


async def try_once(
    node: SupervisorNode,
    track: Track,
    step: Step,
    task: Task,
    run: GoalRun,
    span: SpanHook,
    outputs: Mapping[str, Any],
    feedback: tuple[str, ...],
    follow: bool = True,
) -> Decision:
    """One attempt at ``task`` on the best available candidate, and what follows it.

    Returns :class:`Done`, :class:`RetryLater` (the delay before the next attempt, on the
    same child or, after a reassignment, on the next), or :class:`Escalate`; a failure of
    the child is recorded and decided on, never raised. The attempt runs under the
    child's timeout, inside its own span linked to the unit's previous attempt (which
    becomes ``track.previous`` whether it succeeds or not), and updates the child's
    breaker. Cancellation from outside passes through untouched, and a cancelled attempt
    counts neither as a success nor as a failure of the breaker.

    A hand-off the child returns is followed to its end here, unless ``follow`` is false:
    then it is the attempt's output, for the caller that is following a chain already
    (one loop for the whole chain, however long, rather than one nested call per hop).
    """
    if track.ranked is None:
        track.ranked = node.known_rank(step)
    if track.ranked is None:
        try:
            track.ranked = await node.rank(step)
        except NoCandidate as exc:
            return escalate(node, exc, exc.__cause__, track, run, span)
        except BudgetExhausted as exc:
            run.fail_once(
                path=node.path,
                layer=node.definition.layer_name,
                step=step.name,
                attempt=track.total,
                error=exc,
            )
            return Escalate(exc)
    child = node.candidate(track, span)
    if child is None:
        if track.total == 0:
            error: Escalation = NoCandidate(node.path, step.name, "no healthy child fits this step")
        else:
            error = CandidatesExhausted(
                node.path, step.name, f"every candidate failed ({track.total} attempts)"
            )
        return escalate(node, error, None, track, run, span)
    track.attempt += 1
    track.total += 1

    definition = child.definition
    ctx = _new_context(
        task,  # task
        run.goal,  # goal
        run.goal_id,  # goal_id
        definition.path,  # path
        track.attempt,  # attempt
        outputs,  # outputs
        run.memory,  # memory
        feedback,  # feedback
        definition.layer_name,  # layer
        run.usage,  # usage
        (),  # children
    )
    if definition.layer is _LEAF:
        try:
            run.usage.charge_attempt(definition.path)
        except BudgetExhausted as exc:
            return decide(node, track, child, exc, run, span)
    name = definition.name
    breaker = node.breakers.get(name)
    if breaker is not None and not breaker.clean:
        breaker.begin()
    stats = node.stats[name]
    stats[0] += 1
    settled = False
    # Function leaves without a concurrency limit are awaited directly: one frame less.
    direct = child.direct if type(child) is FunctionLeafNode else None
    timeout = definition.timeout
    # What current_context() returns inside the child, restored after it.
    me = trio.lowlevel.current_task()
    outer = CONTEXTS.get(me)
    CONTEXTS[me] = ctx
    # The span is entered and left by hand rather than by ``with``: untraced, there is no
    # span at all, and a ``with`` would keep a bound ``__exit__`` alive per attempt.
    opened: AbstractContextManager[SpanHook] | None = None
    try:
        if node.runtime.traced:
            opened = _span(node, child, task, run, track)
        child_span = NULL_SPAN if opened is None else opened.__enter__()
        track.previous = child_span
        try:
            try:
                if timeout is not None:
                    with trio.move_on_after(timeout) as bound:
                        output = await child.execute(task, ctx, run, child_span)
                    # cancel_called, not cancelled_caught: an agent that swallows the
                    # Cancelled and returns late has still run out of time.
                    if bound.cancel_called:
                        raise AttemptTimeout(
                            definition.path, f"attempt timed out after {timeout:g} s"
                        )
                elif direct is not None:
                    output = await direct(task, ctx)
                else:
                    output = await child.execute(task, ctx, run, child_span)
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
                        node.breaker_event(name, moved, span)
                raise
        except BaseException as exc:
            if opened is not None:
                opened.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if opened is not None:
            opened.__exit__(None, None, None)
        stats[1] += 1
        if breaker is not None and not breaker.clean:
            settled = True
            moved = breaker.success()
            if moved is not None:
                node.breaker_event(name, moved, span)
    except Exception as exc:
        restore_context(me, outer)
        # Released before deciding, so the decision sees the child as no longer busy.
        _release(stats, breaker, settled)
        return decide(node, track, child, exc, run, span)
    except BaseException:
        restore_context(me, outer)
        _release(stats, breaker, settled)
        raise
    if outer is None:  # restore_context(), inline: the one path every attempt takes
        del CONTEXTS[me]
    else:
        CONTEXTS[me] = outer
    stats[0] -= 1
    if follow and isinstance(output, _HANDOFFS):
        try:
            output = await follow_handoff(node, output, child, task, run, span, outputs, feedback)
        except Failure as exc:
            # An escalation from the chain's target is in the failure chain already.
            run.fail_once(
                path=node.path,
                layer=node.definition.layer_name,
                step=step.name,
                attempt=track.total,
                error=exc,
            )
            node.count_failure(span, goal_id=run.goal_id, step=step.name)
            return escalate(
                node,
                Escalation(node.path, step.name, f"hand-off failed: {exc}", fatal=exc.fatal),
                exc,
                track,
                run,
                span,
            )
    return _new_done(output, definition.path, False)


def _release(stats: list[int], breaker: CircuitBreaker | None, settled: bool) -> None:
    stats[0] -= 1
    if breaker is not None and not settled:
        breaker.cancelled()  # neither a success nor a failure: the breaker forgets it


def _span(
    node: SupervisorNode, child: Node, task: Task, run: GoalRun, track: Track
) -> AbstractContextManager[SpanHook]:
    definition = child.definition
    attributes = node.span_attributes[definition.name]
    if task.item is not None or task.handoffs:
        attributes = dict(attributes)
        if task.item is not None:
            attributes["overstory.item"] = task.item
        if task.handoffs:
            attributes["overstory.handoffs"] = task.handoffs
    return node.runtime.instrumentation.invoke(
        layer=definition.layer,
        name=definition.name,
        path=definition.path,
        description=definition.description,
        goal_id=run.goal_id,
        step=task.step,
        attempt=track.attempt,
        previous=track.previous,
        attributes=attributes,
    )
