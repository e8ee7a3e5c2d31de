"""Running one supervisor's plan for one goal: the steps as a DAG inside one nursery.

The scheduler owns every decision about *which* work runs; the supervisor decides what
one failure leads to. Each unit of work (a step, or one item of a fan-out) runs exactly
one attempt per task and applies what it led to before the task ends (trio runs one
task at a time, so the bookkeeping needs no lock, and a plain success never wakes the
plan's own task); retries wait in the scheduler
(so cancelling the goal during a backoff returns at once), and the restart strategy is
applied here: ``one_for_all`` and ``rest_for_one`` cancel and invalidate the affected
steps. Units cancelled that way are bystanders: nothing counts them as failures.

Checkpoint keys name a unit of work within its goal: ``"{supervisor path}#{step}"``,
``"{supervisor path}#{step}[{i}]"`` for fan-out item ``i``, with ``"@{n}"`` appended for
the n-th run of a step (n > 1: after a review rejection or a group restart). A plan
nested below a step prefixes its keys with that step's key and ``">"``
(``"t/boss#each[1]>t/boss/team#draft"``), so a team that works on several steps or items
of one goal writes one key for each. A supervisor's plan re-run after its own review was
rejected is scoped ``"{path}~{round}>"``, a re-plan after an escalation ``"{path}^{n}>"``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from overstory._errors import Escalation, Failure, NoCandidate
from overstory._trusted import trusted_constructor
from overstory.hierarchy._context import Context
from overstory.hierarchy._outcome import Status, StepRecord
from overstory.hierarchy._plan import Step
from overstory.hierarchy._task import Task
from overstory.supervisors._attempts import try_once
from overstory.supervisors._decisions import (
    Decision,
    Done,
    Escalate,
    RetryLater,
    UpwardHandoff,
)
from overstory.supervisors._events import EventKind
from overstory.supervisors._failures import escalate
from overstory.supervisors._policies import Strategy
from overstory.supervisors._runtime import GoalRun, key_scope, within_key
from overstory.supervisors._step_review import review_step
from overstory.supervisors._units import Phase, StepRun, Unit, resume_track
from overstory.telemetry._hooks import SpanHook

if TYPE_CHECKING:
    from overstory.supervisors._supervisor import SupervisorNode

__all__ = ["PlanRun"]


# Given to trio, which would otherwise format the same name for every task it spawns.
_UNIT_TASK_NAME = f"{__name__}.PlanRun.unit"

# One Task per attempt and one StepRecord per unit, from values already checked.
_new_task = trusted_constructor(Task)
_new_record = trusted_constructor(StepRecord)

# Enum members read per unit of work, looked up once here: on Python 3.11, EnumType has a
# __getattr__, so each ``Enum.MEMBER`` lookup takes a slow path that allocates a method
# wrapper (70 ns against 7 for a global).
_WAITING, _RUNNING, _DONE = Phase.WAITING, Phase.RUNNING, Phase.DONE
_SUCCEEDED, _FAILED = Status.SUCCEEDED, Status.FAILED
_ONE_FOR_ONE = Strategy.ONE_FOR_ONE


class PlanRun:
    """Run ``steps`` (in plan order) for one task of ``supervisor``; see the module doc."""

    def __init__(
        self,
        supervisor: SupervisorNode,
        steps: tuple[Step, ...],
        task: Task,
        ctx: Context,
        run: GoalRun,
        span: SpanHook,
        feedback: tuple[str, ...],
    ) -> None:
        self.sup = supervisor
        self.sup_path = supervisor.path
        self.task = task
        self.ctx = ctx
        self.run_state = run
        self.span = span
        self.feedback = ctx.feedback + feedback
        self.steps = [StepRun(step, index) for index, step in enumerate(steps)]
        self.by_name = {s.step.name: s for s in self.steps}
        self.tracks: dict[str, Unit] = {}
        self.running = 0
        self.limit = supervisor.spec.max_parallel
        self.cancellable = supervisor.spec.strategy is not _ONE_FOR_ONE
        self.error: Failure | None = None
        self.finished_steps = 0
        # Units idle (neither done nor running) across all steps: when none are, a unit
        # that ends can start nothing new unless it completed its step.
        self.idle = 0
        self.nursery: trio.Nursery | None = None
        # The plan's own task while it waits; a unit task wakes it when the plan needs a
        # look (an error, the last step done, a retry or restart that waits for a time).
        self.waiter: trio.lowlevel.Task | None = None
        # trio.current_time() minus the two calls that find the clock, read per unit.
        self.now = trio.lowlevel.current_clock().current_time
        # The checkpoint key is needed to look up or write checkpoints, and to scope the
        # keys of a nested plan (a child that is a supervisor), which its reviews carry.
        self.keyed = (
            bool(run.checkpoints)
            or run.on_checkpoint is not None
            or (supervisor.has_supervisor_children and supervisor.runtime.reviewer is not None)
        )

    async def run(self) -> dict[str, Any]:
        """Run the plan to completion; returns each step's output by name.

        Raises the :class:`Escalation` (or other failure) that ended the plan, after
        every unit it started has stopped. Cancellation passes through untouched.
        """
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                while True:
                    now = self.now()
                    self._launch(now)
                    if self.error is not None or self.finished_steps == len(self.steps):
                        break
                    wake = self._next_wake(now)
                    if wake == math.inf:
                        # Nothing waits for a time: no cancel scope needed for the wait.
                        await self._sleep()
                    else:
                        with trio.move_on_at(wake):
                            await self._sleep()
                if self.error is not None or self.running:
                    nursery.cancel_scope.cancel()  # stop what still runs (nothing, usually)
            if self.error is not None:
                raise self.error
            if self.finished_steps != len(self.steps):
                raise self._lost_unit()
            return {s.step.name: s.output for s in self.steps}
        finally:
            # Units and their step point at each other (also while the step awaits a
            # review that never came), and a raised error's traceback holds this frame,
            # which holds the plan: break the cycles so a finished plan, failed or not,
            # is freed at once instead of waiting for the cyclic collector.
            for step_run in self.steps:
                step_run.units = None
                step_run.unreviewed.clear()
            self.nursery = None
            self.error = None

    def _lost_unit(self) -> Escalation:
        # A unit task can only end without reporting by raising trio.Cancelled from a
        # scope outside this goal (a leaf re-raising a Cancelled it caught elsewhere):
        # the nursery takes it for its own and swallows it, and the plan would
        # otherwise return with a step that never ran.
        step = next(s.step.name for s in self.steps if s.phase is not _DONE)
        return Escalation(
            self.sup_path,
            step,
            "a unit of this step ended without an outcome: it raised trio.Cancelled "
            "from a cancel scope outside the goal",
        )

    async def _sleep(self) -> None:
        """Wait for :meth:`_wake` (what a trio.Event does, minus one Event per wait).
        Cancellation passes through."""
        self.waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self.waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    @trio.lowlevel.enable_ki_protection
    def wake(self) -> None:
        # Wakes that come while the plan's task is already awake are dropped: it looks
        # at the whole plan before it sleeps again.
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)

    # -- launching ----------------------------------------------------------------------

    def _next_wake(self, now: float) -> float:
        # Only future wake-ups: units eligible now but held back by max_parallel start when
        # a running unit reports, and waking for them would spin without yielding time.
        if not self.idle:
            return math.inf
        pending = [
            unit.eligible_at
            for s in self.steps
            if s.idle and s.phase is _RUNNING and s.units is not None
            for unit in s.units
            if not unit.done and not unit.active and unit.eligible_at > now
        ]
        return min(pending, default=math.inf)

    def _launch(self, now: float) -> None:
        for step_run in self.steps:
            if self.error is not None:
                return
            after = step_run.step.after
            if step_run.phase is _WAITING and (
                not after or all(self.by_name[d].phase is _DONE for d in after)
            ):
                self._expand(step_run, now)
            if step_run.idle and step_run.phase is _RUNNING and step_run.units is not None:
                cap = step_run.step.max_parallel or self.limit
                for unit in step_run.units:
                    if self.running >= self.limit or step_run.running >= cap:
                        break
                    if not unit.done and not unit.active and unit.eligible_at <= now:
                        self._start(unit, now)

    def _expand(self, step_run: StepRun, now: float) -> None:
        step = step_run.step
        step_run.runs += 1
        step_run.phase = _RUNNING
        source = step.source
        items: Iterable[tuple[int | None, Any]]
        if source is None:
            # One unit; when this task is an item of the parent's fan-out, so is the unit.
            items = ((self.task.item, self.task.input),)
        else:
            try:
                items = enumerate(self._fan_out_values(step, *source))
            except Failure as exc:
                self.fail(exc, step_run)
                return
        not_before = step_run.not_before
        # Ranked once for the whole step while every child is known available (what each
        # unit's first attempt would otherwise look up); else each unit ranks for itself.
        ranked = self.sup.known_rank(step) if self.sup.all_available() else None
        step_run.units = [
            Unit(
                step=step.name,
                ranked=ranked,
                run=step_run,
                item=item,
                input=value,
                eligible_at=not_before,
            )
            for item, value in items
        ]
        tracks = self.tracks
        if tracks:
            for unit in step_run.units:
                resume_track(unit, tracks.get(unit.key))
        if step.review or self.sup.spec.strategy is not _ONE_FOR_ONE:
            # Only these re-run a step: remember each unit's track for the next run.
            for unit in step_run.units:
                tracks[unit.key] = unit
        step_run.idle = len(step_run.units)
        self.idle += step_run.idle
        step_run.finished = 0
        outputs: Mapping[str, Any] = self.ctx.outputs
        if step.after:
            outputs = {**outputs, **{d: self.by_name[d].output for d in step.after}}
        step_run.outputs = outputs
        step_run.task_to = step.to.split("/", 1)[1] if step.to and "/" in step.to else None
        step_run.unit_feedback = self.feedback + tuple(step_run.feedback)
        if not step_run.units:
            self._complete(step_run)

    def _fan_out_values(self, step: Step, where: str, key: str | None) -> list[Any]:
        base = self.task.input if where == "input" else self.by_name[where].output
        try:
            value = base if key is None else base[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise Escalation(
                self.sup.path,
                step.name,
                f"for_each={step.for_each!r}: no such value ({type(exc).__name__}: {exc})",
                fatal=True,
            ) from None
        if not isinstance(value, list | tuple):
            raise Escalation(
                self.sup.path,
                step.name,
                f"for_each={step.for_each!r} must name a list, got {type(value).__name__}",
                fatal=True,
            )
        return list(value)

    def _start(self, unit: Unit, now: float) -> None:
        assert self.nursery is not None
        unit.active = True
        if unit.started is None:
            unit.started = now
        self.running += 1
        unit.run.running += 1
        unit.run.idle -= 1
        self.idle -= 1
        if self.cancellable:
            unit.scope = trio.CancelScope()
            self.nursery.start_soon(
                self._cancellable_unit_task, unit, unit.scope, name=_UNIT_TASK_NAME
            )
        else:
            self.nursery.start_soon(self._unit_task, unit, name=_UNIT_TASK_NAME)

    async def _unit_task(self, unit: Unit) -> None:
        # one_for_one never cancels a running unit (a rejected review re-runs a step
        # whose units are all done), so the unit needs no cancel scope of its own.
        decision = await self._attempt(unit)
        # A retry without backoff, when no other unit waits for a slot, goes on in this
        # task: what the plan's task would do anyway, minus a wake-up and a new task.
        while type(decision) is RetryLater and decision.delay <= 0 and not self.idle:
            await trio.lowlevel.checkpoint()  # a unit failing at once must still yield
            if self.error is not None:
                break  # the plan has failed: its task is about to cancel every unit
            decision = await self._attempt(unit)
        self._ended(unit, decision)
        # An escalation's traceback reaches this frame (Python 3.13 links a finished
        # frame to its caller's), so the frame must not keep the decision that holds it.
        del decision

    async def _cancellable_unit_task(self, unit: Unit, scope: trio.CancelScope) -> None:
        decision: Decision | None = None
        with scope:
            decision = await self._attempt(unit)
        self._ended(unit, decision)
        del decision  # (see _unit_task)

    def _attempt(self, unit: Unit) -> Awaitable[Decision]:
        # Returns the attempt's coroutine rather than awaiting it: one frame less per unit.
        step_run = unit.run
        step = step_run.step
        task = _new_task(
            step.goal,  # goal
            self.run_state.goal_id,  # goal_id
            unit.input,  # input
            step.name,  # step
            step.skills,  # skills
            step_run.task_to,  # to
            unit.item,  # item
            self.task.handoffs,  # handoffs
        )
        if self.keyed:
            return self._keyed_attempt(unit, task)
        assert step_run.outputs is not None
        return try_once(
            self.sup,
            unit,
            step,
            task,
            self.run_state,
            self.span,
            step_run.outputs,
            step_run.unit_feedback,
        )

    async def _keyed_attempt(self, unit: Unit, task: Task) -> Decision:
        run = self.run_state
        step_run = unit.run
        key = key_scope() + f"{self.sup.path}#{unit.key}"
        if step_run.runs > 1:
            key += f"@{step_run.runs}"
        if run.checkpoints and key in run.checkpoints:
            return Done(run.checkpoints[key], None, resumed=True)
        assert step_run.outputs is not None
        with within_key(key):
            decision = await try_once(
                self.sup,
                unit,
                step_run.step,
                task,
                run,
                self.span,
                step_run.outputs,
                step_run.unit_feedback,
            )
        if (
            isinstance(decision, Done)
            and run.on_checkpoint is not None
            and not isinstance(decision.output, UpwardHandoff)
        ):
            try:
                await run.on_checkpoint(key, decision.output)
            except Exception as exc:
                # The same output would fail again: no retry, the goal cannot be resumed.
                problem = f"the output of {unit.key} could not be checkpointed: {exc!r}"
                return escalate(
                    self.sup,
                    Escalation(self.sup_path, unit.step, problem, fatal=True),
                    exc,
                    unit,
                    run,
                    self.span,
                )
        return decision

    # -- applying notices ---------------------------------------------------------------

    def _ended(self, unit: Unit, decision: Decision | None) -> None:
        """Apply how ``unit``'s attempt ended (``None``: the scheduler cancelled it), start
        what that lets start, and wake the plan's task unless this was a plain success."""
        step_run = unit.run
        self.running -= 1
        step_run.running -= 1
        unit.active = False
        unit.scope = None
        if unit.stale or decision is None:
            self.wake()
            return
        now = self.now()
        if not self._apply(unit, decision, now) or self.error is not None:
            # The plan's task expands what now may run and reschedules its wake-up.
            self.wake()
        elif self.idle:
            self._launch(now)  # start units held back by max_parallel

    def _apply(self, unit: Unit, decision: Decision, now: float) -> bool:
        """Apply ``decision``; returns whether it was a success the plan's task need not
        look at (its step still has units to finish)."""
        if isinstance(decision, Done):
            if isinstance(decision.output, UpwardHandoff) and len(self.steps) > 1:
                handoff = decision.output.handoff
                error = NoCandidate(
                    self.sup.path,
                    unit.run.step.name,
                    f"no agent fits the hand-off to {handoff.to or handoff.goal!r}",
                )
                self.record(unit, _FAILED, decision.agent, now)
                self.fail(error, unit.run)
                return False
            unit.done = True
            unit.output = decision.output
            step_run = unit.run
            if step_run.step.review:
                step_run.unreviewed.append((unit, decision.agent, now, decision.resumed))
            else:
                self.record(unit, _SUCCEEDED, decision.agent, now, resumed=decision.resumed)
            step_run.finished += 1
            if step_run.units is not None and step_run.finished == len(step_run.units):
                self._complete(step_run)  # done or in review: either way the plan looks
                return False
            return True
        if isinstance(decision, Escalate):
            self.record(unit, _FAILED, None, now)
            self.fail(decision.error, unit.run)
            return False
        unit.eligible_at = now + decision.delay
        unit.run.idle += 1
        self.idle += 1
        if self.sup.spec.strategy is not _ONE_FOR_ONE:
            self._group_restart(unit.run, now + decision.delay)
        return False

    def record(
        self, unit: Unit, status: Status, agent: str | None, now: float, *, resumed: bool = False
    ) -> None:
        started = now if unit.started is None else unit.started
        self.run_state.steps.append(
            _new_record(
                self.sup_path,  # supervisor
                unit.run.step.name,  # step
                status,  # status
                agent,  # agent
                unit.total,  # attempts
                unit.run.runs,  # runs
                unit.item,  # item
                started - self.run_state.started,  # started
                now - started,  # duration
                unit.run.review_label,  # review
                resumed,  # resumed
            )
        )

    def fail(self, error: Failure, step_run: StepRun) -> None:
        if self.error is None:
            self.error = error

    def _complete(self, step_run: StepRun) -> None:
        units = step_run.units or []
        output = units[0].output if step_run.step.for_each is None else [u.output for u in units]
        step_run.output = output
        if not step_run.step.review or isinstance(output, UpwardHandoff):
            self.done(step_run)
            return
        step_run.phase = Phase.REVIEWING
        step_run.review_scope = trio.CancelScope()
        assert self.nursery is not None
        self.nursery.start_soon(review_step, self, step_run, step_run.review_scope)

    def done(self, step_run: StepRun) -> None:
        step_run.phase = _DONE
        self.finished_steps += 1

    # -- restart strategies -------------------------------------------------------------

    def _group_restart(self, failed: StepRun, not_before: float) -> None:
        strategy = self.sup.spec.strategy
        affected = [
            s for s in self.steps if strategy is Strategy.ONE_FOR_ALL or s.index >= failed.index
        ]
        self.sup.runtime.report(
            self.span,
            EventKind.GROUP_RESTART,
            self.sup.path,
            goal_id=self.run_state.goal_id,
            step=failed.step.name,
            delay=max(0.0, not_before - trio.current_time()),
            message=f"{strategy.value}: re-running {', '.join(s.step.name for s in affected)}",
        )
        for step_run in affected:
            self.invalidate(step_run, not_before)

    def invalidate(self, step_run: StepRun, not_before: float) -> None:
        """Stop a step's running units and review, drop its output, and let it re-run
        (from scratch, with its fan-out re-expanded) once ``not_before`` has passed."""
        for unit in step_run.units or ():
            unit.stale = True
            if unit.scope is not None:
                unit.scope.cancel()
        if step_run.review_scope is not None:
            step_run.review_scope.cancel()
            step_run.review_scope = None
        if step_run.phase is _DONE:
            self.finished_steps -= 1
        step_run.units = None
        self.idle -= step_run.idle
        step_run.idle = 0
        step_run.finished = 0
        step_run.unreviewed.clear()
        step_run.output = None
        step_run.phase = _WAITING
        step_run.not_before = not_before
