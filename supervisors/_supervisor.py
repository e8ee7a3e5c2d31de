"""A supervisor at run time: route, attempt, and decide what a failure leads to.

One ``SupervisorNode`` serves every goal; its intensity gate and its children's
breakers are shared across goals, as in OTP. Per goal, the steps of its plan run in a
:class:`~overstory.supervisors._scheduler.PlanRun`, which asks this node for exactly one
attempt at a time (:meth:`SupervisorNode.try_once`) and applies the decision it returns.

The attempt itself (:mod:`~overstory.supervisors._attempts`), what a failure leads to
(:mod:`~overstory.supervisors._failures`) and hand-offs between children
(:mod:`~overstory.supervisors._handoffs`) are functions of the node in modules of their
own; they import this module only for type checking, so there is no import cycle.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from overstory._errors import (
    BudgetExhausted,
    Escalation,
    Fatal,
    NoCandidate,
    PlanError,
    ReviewRejected,
    SupervisorTripped,
)
from overstory.hierarchy._blueprint import NodeDef, resolves_route
from overstory.hierarchy._context import Context
from overstory.hierarchy._plan import Step, validate_plan
from overstory.hierarchy._routing import Candidate, LexicalRouter, RouteRequest
from overstory.hierarchy._spec import Strategic, SupervisorSpec
from overstory.hierarchy._task import Task
from overstory.supervisors._attempts import try_once
from overstory.supervisors._decisions import (
    Decision,
    Track,
    UpwardHandoff,
)
from overstory.supervisors._events import EventKind
from overstory.supervisors._gates import (
    ADMIT_OPEN,
    ADMIT_REJECT,
    BreakerState,
    CircuitBreaker,
    IntensityGate,
)
from overstory.supervisors._review import review
from overstory.supervisors._runtime import GoalRun, Node, Runtime, key_scope, within_key
from overstory.supervisors._scheduler import PlanRun
from overstory.telemetry._hooks import AttributeValue, SpanHook

__all__ = ["SupervisorNode"]

_DEFAULT_ROUTER = LexicalRouter()
# Rankings remembered per supervisor, for routers known to be pure functions.
_RANK_MEMO_SIZE = 1024

_BREAKER_EVENTS = {
    BreakerState.OPEN: EventKind.BREAKER_OPEN,
    BreakerState.HALF_OPEN: EventKind.BREAKER_HALF_OPEN,
    BreakerState.CLOSED: EventKind.BREAKER_CLOSE,
}


class SupervisorNode:
    """Runs tasks handed to one strategic or tactical supervisor."""

    def __init__(self, definition: NodeDef, children: Sequence[Node], runtime: Runtime) -> None:
        spec = definition.spec
        assert isinstance(spec, SupervisorSpec)
        self.definition = definition
        self.spec = spec
        self.runtime = runtime
        self.children: dict[str, Node] = {c.definition.name: c for c in children}
        # Only a supervisor child runs a plan of its own, whose keys need this one's prefix.
        self.has_supervisor_children = any(isinstance(c, SupervisorNode) for c in children)
        self.gate = IntensityGate(spec.intensity)
        #: What fails a unit at once, never retried or reassigned.
        self.fatal_types: tuple[type[BaseException], ...] = (Fatal, *spec.retry.fatal)
        self._all_names = tuple(self.children)
        # The runtime's health_changes when every child was last seen available and
        # steady: while it has not moved, routing need not ask them again.
        self._steady_at = -1
        # A child not steady now, before any failure (an agent pool), never is: then no
        # attempt need look again.
        self._may_be_steady = all(child.steady() for child in self.children.values())
        self.breakers: dict[str, CircuitBreaker] = (
            {name: CircuitBreaker(spec.breaker) for name in self.children}
            if spec.breaker is not None
            else {}
        )
        self.router = spec.router or _DEFAULT_ROUTER
        # The default router ranks by the request and the candidates alone, so the final
        # order is remembered per (step, children available for it).
        self._rank_memo: dict[tuple[Step, tuple[str, ...]], tuple[str, ...]] | None = (
            {} if type(self.router) is LexicalRouter else None
        )
        self._candidates = {
            name: Candidate(
                name=name,
                description=child.definition.description,
                skills=child.definition.skills,
                layer=child.definition.layer,
            )
            for name, child in self.children.items()
        }
        # Span attributes per child beyond what every invocation carries (telemetry).
        self.span_attributes: dict[str, dict[str, AttributeValue]] = {
            name: (
                {"overstory.strategy": child.definition.spec.strategy.value}
                if isinstance(child.definition.spec, SupervisorSpec)
                else {}
            )
            for name, child in self.children.items()
        }
        #: Per child: [attempts in flight, attempts succeeded, attempts failed].
        self.stats: dict[str, list[int]] = {name: [0, 0, 0] for name in self.children}
        self._static_plan = (
            validate_plan(spec.steps, self.children) if spec.steps is not None else None
        )
        # The static plan, when a task is nothing but running it (see ``execute``).
        self._plain = (
            self._static_plan
            if not spec.review
            and spec.aggregate is None
            and not (isinstance(spec, Strategic) and spec.replans)
            else None
        )

    def _routes_to(self, route: str) -> bool:
        """Whether ``route`` (``team/agent``) names a node below this supervisor."""
        return resolves_route(self.definition.children, route)

    @property
    def path(self) -> str:
        return self.definition.path

    # -- health -------------------------------------------------------------------------

    def healthy(self, now: float) -> bool:
        return self.gate.admissible(now)

    def steady(self) -> bool:
        # An untripped gate admits until a failure trips it, which bumps health_changes.
        return not self.gate.tripped

    def available(self, name: str, now: float, span: SpanHook | None = None) -> bool:
        """Whether routing may pick child ``name`` now: healthy and breaker not open."""
        breaker = self.breakers.get(name)
        if breaker is not None and not breaker.closed:
            moved = breaker.refresh(now)
            if moved is not None:
                self.breaker_event(name, moved, span)
            if not breaker.available(now):
                return False
        return self.children[name].healthy(now)

    def breaker_event(self, name: str, state: BreakerState, span: SpanHook | None) -> None:
        """Called on every move of a child's breaker: report it, forget availability."""
        self.runtime.health_changes += 1
        self.runtime.report(span, _BREAKER_EVENTS[state], self.path, agent=f"{self.path}/{name}")

    def count_failure(
        self,
        span: SpanHook | None = None,
        *,
        goal_id: str | None = None,
        step: str | None = None,
        agent: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Count one child failure toward intensity; emit TRIP when it trips the gate."""
        # Named parameters, not ``**fields``: every failure of a storm comes through here,
        # and only the one that trips the gate needs the fields.
        if self.gate.record_failure(trio.current_time()):
            self.runtime.health_changes += 1
            self.runtime.report(
                span,
                EventKind.TRIP,
                self.path,
                message=(
                    f"more than {self.spec.intensity.max_failures} failures within "
                    f"{self.spec.intensity.within:g} s"
                ),
                goal_id=goal_id,
                step=step,
                agent=agent,
                error_type=error_type,
            )

    # -- one task -----------------------------------------------------------------------

    async def execute(self, task: Task, ctx: Context, run: GoalRun, span: SpanHook) -> Any:
        """Run ``task`` through this supervisor's plan; escalate when it cannot be done.

        Raises :class:`SupervisorTripped` at once while tripped (one probe task passes
        after the cooldown), an :class:`Escalation` when a step fails for good, or the
        aggregator's exception. Returns an :class:`UpwardHandoff` when a hand-off fits
        no child here.
        """
        admission = self.gate.admit(trio.current_time())
        if admission is ADMIT_REJECT:
            raise SupervisorTripped(
                self.path, task.step or self.definition.name, "tripped: escalating new work"
            )
        if admission is ADMIT_OPEN:
            if self._plain is not None:
                # No review, no re-plan, no aggregator: what _handle would do, minus three
                # coroutines per task (this runs once per step of every parent's plan).
                outputs = await PlanRun(self, self._plain, task, ctx, run, span, ()).run()
                return _combine(self._plain, outputs)
            return await self._handle(task, ctx, run, span)
        self.runtime.report(span, EventKind.TRIP_PROBE, self.path, goal_id=run.goal_id)
        succeeded: bool | None = None
        try:
            result = await self._handle(task, ctx, run, span)
            succeeded = True
            return result
        except Exception:
            succeeded = False
            raise
        finally:
            self.gate.probe_done(trio.current_time(), succeeded=succeeded)
            self.runtime.health_changes += 1
            if succeeded is not None:
                kind = EventKind.TRIP_RESET if succeeded else EventKind.TRIP
                self.runtime.report(span, kind, self.path, goal_id=run.goal_id)

    async def _handle(self, task: Task, ctx: Context, run: GoalRun, span: SpanHook) -> Any:
        feedback: list[str] = []
        step = task.step or self.definition.name
        while True:
            if feedback:  # a re-run after a rejected review gets checkpoint keys of its own
                with within_key(f"{self.path}~{len(feedback) + 1}"):
                    steps, outputs = await self._plan_and_run(task, ctx, run, span, tuple(feedback))
            else:
                steps, outputs = await self._plan_and_run(task, ctx, run, span, tuple(feedback))
            output = await self._aggregate(steps, outputs, task, ctx)
            if not self.spec.review or isinstance(output, UpwardHandoff):
                return output
            verdict = await review(
                self,
                run,
                span,
                step=step,
                agent=self.path,
                output=output,
                round=len(feedback) + 1,
                key=key_scope() + self.path,
            )
            if verdict.accepted:
                return verdict.output
            feedback.append(verdict.feedback)
            if len(feedback) >= self.spec.max_review_rounds:
                raise ReviewRejected(
                    self.path,
                    f"output rejected {len(feedback)} times; last feedback: {verdict.feedback}",
                )

    async def _plan_and_run(
        self, task: Task, ctx: Context, run: GoalRun, span: SpanHook, feedback: tuple[str, ...]
    ) -> tuple[tuple[Step, ...], dict[str, Any]]:
        """Plan, run the plan, and re-plan after an escalation as ``replans`` allows."""
        replans = self.spec.replans if isinstance(self.spec, Strategic) else 0
        notes: tuple[str, ...] = ()
        while True:
            steps = await self._plan_for(task, ctx, run, notes)
            plan = PlanRun(self, steps, task, ctx, run, span, feedback)
            try:
                if notes:  # a re-plan's steps get checkpoint keys of their own
                    with within_key(f"{self.path}^{len(notes)}"):
                        return steps, await plan.run()
                return steps, await plan.run()
            except Escalation as exc:
                if len(notes) >= replans or exc.fatal or isinstance(exc, SupervisorTripped):
                    raise
                notes = (
                    *notes,
                    f"step {exc.step!r} failed: {type(exc).__name__}: {exc.message}",
                )
                self.runtime.report(
                    span,
                    EventKind.REPLAN,
                    self.path,
                    goal_id=run.goal_id,
                    step=exc.step,
                    attempt=len(notes),
                    error_type=type(exc).__name__,
                    message=exc.message,
                )

    async def _plan_for(
        self, task: Task, ctx: Context, run: GoalRun, notes: tuple[str, ...] = ()
    ) -> tuple[Step, ...]:
        if self._static_plan is not None:
            return self._static_plan
        plan = self.spec.plan
        if plan is None:
            return (
                Step(
                    task.step or self.definition.name,
                    task.goal,
                    to=task.to if task.to and task.to.split("/")[0] in self.children else None,
                    skills=task.skills,
                ),
            )
        assert callable(plan)
        with self.runtime.instrumentation.plan(
            name=self.definition.name, path=self.path, goal_id=run.goal_id
        ) as plan_span:
            steps = await plan(
                task,
                attrs.evolve(
                    ctx,
                    children=tuple(self._candidates.values()),
                    feedback=(*ctx.feedback, *notes),
                ),
            )
            try:
                return validate_plan(steps, self.children, self._routes_to)
            except ValueError as exc:
                # Raised from a call, not a local: the error's traceback holds this frame.
                raise _invalid_plan(self.path, exc, plan_span) from None

    async def _aggregate(
        self, steps: tuple[Step, ...], outputs: Mapping[str, Any], task: Task, ctx: Context
    ) -> Any:
        if self.spec.aggregate is None or (
            len(steps) == 1 and isinstance(outputs[steps[0].name], UpwardHandoff)
        ):
            return _combine(steps, outputs)
        result = self.spec.aggregate(outputs, task, ctx)
        return await result if inspect.isawaitable(result) else result

    # -- routing ------------------------------------------------------------------------

    def all_available(self) -> bool:
        """Whether every child is available, known without asking each of them (false
        when unknown)."""
        return self._steady_at == self.runtime.health_changes

    def _available_names(self, exclude: str | None = None) -> tuple[str, ...]:
        if exclude is None and self.all_available():
            return self._all_names
        now = trio.current_time()
        names = tuple([n for n in self.children if n != exclude and self.available(n, now)])
        if (
            exclude is None
            and self._may_be_steady
            and len(names) == len(self.children)
            and all(b.closed for b in self.breakers.values())
            and all(child.steady() for child in self.children.values())
        ):
            # Every child is available and stays so until a breaker or gate moves.
            self._steady_at = self.runtime.health_changes
        return names

    def known_rank(self, step: Step) -> Sequence[str] | None:
        """:meth:`rank` without awaiting, when the answer is remembered; else ``None``."""
        memo = self._rank_memo
        return None if memo is None else memo.get((step, self._available_names()))

    async def rank(self, step: Step, exclude: str | None = None) -> Sequence[str]:
        """Healthy children for ``step``, best first; ``to=`` always leads."""
        names = self._available_names(exclude)
        memo = self._rank_memo
        if memo is not None:
            key = (step, names)
            known = memo.get(key)
            if known is None:
                if len(memo) >= _RANK_MEMO_SIZE:
                    memo.clear()
                known = memo[key] = tuple(await self._rank(step, names))
            return known
        return await self._rank(step, names)

    async def _rank(self, step: Step, names: Sequence[str]) -> list[str]:
        target = step.to.split("/", 1)[0] if step.to else None
        request = RouteRequest(
            goal=step.goal, skills=step.skills, to=target, step=step.name, path=self.path
        )
        try:
            ranked = await self.router(request, [self._candidates[n] for n in names])
            # Inside the try: a router that answers None, a number or unhashable names
            # has failed as surely as one that raised.
            allowed = set(names)
            order = [n for n in dict.fromkeys(ranked) if n in allowed]
        except BudgetExhausted:
            raise  # the goal ran out of budget (a model router spent it), not a routing fault
        except Exception as exc:
            raise NoCandidate(self.path, step.name, f"the router failed: {exc!r}") from exc
        if target is not None and target in allowed:
            order = [target, *(n for n in order if n != target)]
        return order

    def candidate(self, track: Track, span: SpanHook | None) -> Node | None:
        """The child to try now: the current one if still available, else the next."""
        assert track.ranked is not None
        if self.all_available():
            ranked = track.ranked
            return self.children[ranked[track.index]] if track.index < len(ranked) else None
        now = trio.current_time()
        while track.index < len(track.ranked):
            name = track.ranked[track.index]
            if self.available(name, now, span):
                return self.children[name]
            track.index += 1
            track.attempt = 0
        return None

    # -- one attempt and what follows it -------------------------------------------------

    async def try_once(
        self,
        track: Track,
        step: Step,
        task: Task,
        run: GoalRun,
        span: SpanHook,
        *,
        outputs: Mapping[str, Any],
        feedback: tuple[str, ...],
        follow: bool = True,
    ) -> Decision:
        """One attempt at ``task`` and what follows it; see :func:`try_once`."""
        return await try_once(self, track, step, task, run, span, outputs, feedback, follow)


def _combine(steps: tuple[Step, ...], outputs: Mapping[str, Any]) -> Any:
    """A plan's output without an aggregator: the only step's output, or all by name."""
    if len(steps) == 1:
        return outputs[steps[0].name]
    return {step.name: outputs[step.name] for step in steps}


def _invalid_plan(path: str, error: ValueError, span: SpanHook) -> PlanError:
    """The :class:`PlanError` for a dynamic plan that ``validate_plan`` refused, recorded
    on the plan's span."""
    failure = PlanError(path, f"the plan for this goal is invalid: {error}")
    span.record_failure(failure)
    return failure
