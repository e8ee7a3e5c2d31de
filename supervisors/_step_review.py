"""A step's review inside a running plan: ask the reviewer, then apply its verdict.

A function of the :class:`~overstory.supervisors._scheduler.PlanRun` (as the attempt is
of the supervisor) so that the scheduler module keeps to launching and applying units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from overstory._errors import Failure, ReviewRejected
from overstory.hierarchy._outcome import Status
from overstory.supervisors._review import Verdict, review
from overstory.supervisors._runtime import key_scope
from overstory.supervisors._units import Phase, StepRun

if TYPE_CHECKING:  # the scheduler imports this module at run time
    from overstory.supervisors._scheduler import PlanRun

__all__ = ["review_step"]


@attrs.frozen
class _Reviewed:
    step: StepRun
    verdict: Verdict | None  # None: the scheduler cancelled the review
    error: Failure | None = None


async def review_step(plan: PlanRun, step_run: StepRun, scope: trio.CancelScope) -> None:
    """The task that reviews ``step_run``'s output, inside ``scope`` (which a group
    restart cancels), then applies the verdict and wakes the plan. A reviewer's failure
    fails the plan; cancellation by the scheduler leaves the step to its re-run."""
    sup = plan.sup
    notice = _Reviewed(step_run, None)
    with scope:
        units = step_run.units or []
        agents = {u.ranked[u.index] for u in units if u.ranked}
        try:
            verdict = await review(
                sup,
                plan.run_state,
                plan.span,
                step=step_run.step.name,
                agent=", ".join(f"{sup.path}/{a}" for a in sorted(agents)),
                output=step_run.output,
                round=step_run.reviews + 1,
                key=key_scope() + f"{sup.path}#{step_run.step.name}",
            )
        except Failure as exc:
            notice = _Reviewed(step_run, None, exc)
        else:
            notice = _Reviewed(step_run, verdict)
    _apply_verdict(plan, notice)
    # A reviewer's error is in the notice, and its traceback holds this frame: drop the
    # notice, or the two keep each other (and the plan) alive until a full collection.
    del notice
    plan.wake()


def _apply_verdict(plan: PlanRun, notice: _Reviewed) -> None:
    sup = plan.sup
    step_run = notice.step
    if step_run.review_scope is None or step_run.phase is not Phase.REVIEWING:
        return  # a group restart cancelled this review
    step_run.review_scope = None
    if notice.error is not None:
        plan.run_state.fail(
            path=sup.path,
            layer=sup.definition.layer_name,
            step=step_run.step.name,
            attempt=step_run.reviews + 1,
            error=notice.error,
        )
        plan.fail(notice.error, step_run)
        return
    verdict = notice.verdict
    if verdict is None:
        return
    step_run.reviews += 1
    step_run.review_label = verdict.label
    # The step's units are recorded now, with the review's label.
    for unit, agent, ended, resumed in step_run.unreviewed:
        plan.record(unit, Status.SUCCEEDED, agent, ended, resumed=resumed)
    step_run.unreviewed.clear()
    if verdict.accepted:
        step_run.output = verdict.output
        plan.done(step_run)
        return
    if step_run.reviews >= sup.spec.max_review_rounds:
        error = ReviewRejected(
            sup.path,
            f"step {step_run.step.name!r} rejected {step_run.reviews} times; "
            f"last feedback: {verdict.feedback}",
        )
        plan.run_state.fail(
            path=sup.path,
            layer=sup.definition.layer_name,
            step=step_run.step.name,
            attempt=step_run.reviews,
            error=error,
            with_traceback=False,
        )
        plan.fail(error, step_run)
        return
    step_run.feedback.append(verdict.feedback)
    plan.invalidate(step_run, trio.current_time())
