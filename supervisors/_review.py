"""Asking the tree's reviewer about one output, and turning the answer into a verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from overstory._errors import Escalation
from overstory.hierarchy._review import Approve, Edit, Reject, ReviewRequest
from overstory.supervisors._events import EventKind
from overstory.supervisors._runtime import GoalRun
from overstory.telemetry._hooks import SpanHook

if TYPE_CHECKING:
    from overstory.supervisors._supervisor import SupervisorNode

__all__ = ["Verdict", "review"]


@attrs.frozen
class Verdict:
    accepted: bool
    output: Any
    label: str
    feedback: str = ""


async def review(
    supervisor: SupervisorNode,
    run: GoalRun,
    span: SpanHook,
    *,
    step: str,
    agent: str,
    output: Any,
    round: int,
    key: str,
) -> Verdict:
    """Ask the reviewer about ``output``. Raises a fatal :class:`Escalation` when there is
    no reviewer, the reviewer raises, or it answers something other than a decision."""
    reviewer = supervisor.runtime.reviewer
    if reviewer is None:
        raise Escalation(
            supervisor.path,
            step,
            "this step needs review but the tree has no reviewer",
            fatal=True,
        )
    request = ReviewRequest(
        goal_id=run.goal_id,
        goal=run.goal,
        path=supervisor.path,
        step=step,
        agent=agent,
        output=output,
        round=round,
        key=key,
    )
    try:
        decision = await reviewer(request)
    except Exception as exc:
        raise Escalation(
            supervisor.path, step, f"the reviewer failed: {exc!r}", fatal=True
        ) from exc
    if isinstance(decision, Approve):
        verdict = Verdict(True, output, "approved")
    elif isinstance(decision, Edit):
        verdict = Verdict(True, decision.output, "edited")
    elif isinstance(decision, Reject):
        verdict = Verdict(False, output, "rejected", decision.feedback)
    else:
        raise Escalation(
            supervisor.path,
            step,
            f"the reviewer answered {decision!r}; expected ov.Approve, ov.Reject or ov.Edit",
            fatal=True,
        )
    supervisor.runtime.report(
        span,
        EventKind.REVIEW,
        supervisor.path,
        goal_id=run.goal_id,
        step=step,
        attempt=round,
        agent=agent,
        message=verdict.label + (f": {verdict.feedback}" if verdict.feedback else ""),
    )
    return verdict
