"""What a failed attempt leads to: retry the child, reassign the step, or escalate.

Functions of the :class:`~overstory.supervisors._supervisor.SupervisorNode` (see
:mod:`overstory.supervisors._attempts` for why functions); ``escalate`` is shared with
the supervisor's own routing failures, so every escalation is recorded the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from overstory._errors import (
    BudgetExhausted,
    CandidatesExhausted,
    Escalation,
    SupervisorTripped,
    error_text,
)
from overstory.supervisors._decisions import RETRY_AT_ONCE, Decision, Escalate, RetryLater, Track
from overstory.supervisors._events import EventKind
from overstory.supervisors._runtime import GoalRun, Node
from overstory.telemetry._hooks import SpanHook

if TYPE_CHECKING:  # the supervisor module imports this one at run time
    from overstory.supervisors._supervisor import SupervisorNode

__all__ = ["decide", "escalate"]


def decide(
    node: SupervisorNode, track: Track, child: Node, error: Exception, run: GoalRun, span: SpanHook
) -> Decision:
    """Record a failed attempt and choose: retry, reassign or escalate."""
    definition = child.definition
    step = track.step
    # A child supervisor's escalation, or a budget stop passed up, is in the chain already.
    record = run.fail_once if isinstance(error, (BudgetExhausted, Escalation)) else run.fail
    record(
        path=definition.path,
        layer=definition.layer_name,
        step=step,
        attempt=track.attempt,
        error=error,
    )
    if isinstance(error, BudgetExhausted):
        # The goal is already cancelled; pass the reason up without counting anything.
        return Escalate(error)
    error_type = type(error).__name__
    node.count_failure(
        span, goal_id=run.goal_id, step=step, agent=definition.path, error_type=error_type
    )
    retry = node.spec.retry
    if isinstance(error, node.fatal_types) or getattr(error, "fatal", False):
        return escalate(
            node,
            Escalation(
                node.path,
                step,
                f"fatal failure in {definition.path}: {error_text(error)}",
                fatal=True,
            ),
            error,
            track,
            run,
            span,
        )
    if node.gate.tripped:
        return escalate(
            node,
            SupervisorTripped(node.path, step, "restart intensity exceeded"),
            error,
            track,
            run,
            span,
        )
    now = trio.current_time()
    # A child supervisor that escalated has already retried; go straight to the next.
    if (
        not isinstance(error, Escalation)
        and track.attempt < retry.attempts
        and node.available(definition.name, now, span)
    ):
        delay = retry.backoff.delay(track.attempt - 1, node.runtime.rng.random())
        if node.runtime.listening:  # a failure storm retries thousands of times
            node.runtime.report(
                span,
                EventKind.RETRY,
                node.path,
                goal_id=run.goal_id,
                step=step,
                attempt=track.attempt,
                agent=definition.path,
                delay=delay,
                error_type=error_type,
                message=error_text(error),
            )
        return RETRY_AT_ONCE if delay == 0.0 else RetryLater(delay)
    if not retry.reassign:
        return escalate(
            node,
            Escalation(
                node.path,
                step,
                f"{definition.path} failed ({track.total} attempts) and reassignment is "
                f"off; last: {error_type}: {error_text(error)}",
            ),
            error,
            track,
            run,
            span,
        )
    track.index += 1
    track.attempt = 0
    following = node.candidate(track, span)
    if following is not None:
        node.runtime.report(
            span,
            EventKind.REASSIGN,
            node.path,
            goal_id=run.goal_id,
            step=step,
            attempt=track.total,
            agent=definition.path,
            next_agent=following.definition.path,
            error_type=error_type,
            message=error_text(error),
        )
        return RETRY_AT_ONCE
    return escalate(
        node,
        CandidatesExhausted(
            node.path,
            step,
            f"every candidate failed ({track.total} attempts); last: {error_type}: "
            f"{error_text(error)}",
        ),
        error,
        track,
        run,
        span,
    )


def escalate(
    node: SupervisorNode,
    error: Escalation,
    cause: BaseException | None,
    track: Track,
    run: GoalRun,
    span: SpanHook,
) -> Escalate:
    error.__cause__ = cause
    run.fail(
        path=node.path,
        layer=node.definition.layer_name,
        step=track.step,
        attempt=track.total,
        error=error,
        with_traceback=False,
    )
    node.runtime.report(
        span,
        EventKind.ESCALATE,
        node.path,
        goal_id=run.goal_id,
        step=track.step,
        attempt=track.total,
        error_type=type(error).__name__,
        message=error.message,
    )
    return Escalate(error)
