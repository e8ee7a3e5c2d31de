"""Running goals through a started tree: the runner, goal handles, and shutdown.

``Tree.running()`` starts the tree's agents in a service nursery and yields a
:class:`Runner`; each submitted goal runs in its own task and cancel scope inside the
runner's goal nursery, so leaving ``running()`` can never leave a goal behind.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from overstory._errors import (
    ConfigurationError,
    Failure,
    NoCandidate,
    RunnerClosed,
    StartError,
)
from overstory.hierarchy._admission import Admission, Ticket
from overstory.hierarchy._blueprint import NodeDef
from overstory.hierarchy._budget import Budget, Usage
from overstory.hierarchy._context import Context, Memory, using_context
from overstory.hierarchy._handle import GoalHandle
from overstory.hierarchy._outcome import Outcome, Status
from overstory.hierarchy._review import Reviewer
from overstory.hierarchy._task import Task
from overstory.leaves._agent import AgentSpec
from overstory.leaves._leaf import FunctionLeaf
from overstory.leaves._runtime import AgentPoolNode, FunctionLeafNode, ShutdownRecord
from overstory.supervisors._decisions import UpwardHandoff
from overstory.supervisors._events import EventSink
from overstory.supervisors._runtime import CheckpointWriter, GoalRun, Node, Runtime
from overstory.supervisors._supervisor import SupervisorNode
from overstory.telemetry._hooks import Instrumentation, SpanHook, current_instrumentation

__all__ = ["NodeHealth", "Runner", "ShutdownReport", "open_runner"]

logger = logging.getLogger("overstory")


@attrs.frozen(kw_only=True)
class ShutdownReport:
    """How the tree's agents stopped: every instance in stop order, and the bad ones."""

    stopped: tuple[str, ...]
    overran: tuple[str, ...]
    failed: tuple[str, ...]
    cancelled_goals: tuple[str, ...]


@attrs.frozen(kw_only=True)
class NodeHealth:
    """One node's live state, as its parent sees it (``Runner.health()``).

    ``in_flight``, ``succeeded`` and ``failed`` count attempts on this node since the
    tree started; for the root they count goals (a goal that timed out or ran out of
    budget failed; a cancelled one neither succeeded nor failed). ``breaker`` is the
    parent's breaker for it (``None``: no breaker, or the root); ``tripped`` is set for
    supervisors, ``live``/``restarts`` for agents.
    """

    path: str
    layer: str
    in_flight: int
    succeeded: int
    failed: int
    breaker: str | None = None
    tripped: bool | None = None
    recent_failures: int | None = None
    live: int | None = None
    restarts: int | None = None


class Runner:
    """Accepts goals for a started tree; made by ``Tree.running()``."""

    def __init__(
        self,
        *,
        tree: str,
        root: SupervisorNode,
        runtime: Runtime,
        nursery: trio.Nursery,
        max_concurrent: int | None,
    ) -> None:
        self.tree = tree
        self.root = root
        self.runtime = runtime
        self._nursery = nursery
        self._admission = Admission(max_concurrent) if max_concurrent is not None else None
        self._active: dict[str, GoalHandle] = {}
        self._ended = [0, 0]  # goals that succeeded, failed (the root's health)
        self._accepting = True
        self.report: ShutdownReport | None = None

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def in_flight(self) -> tuple[GoalHandle, ...]:
        """Goals submitted and not yet ended (running or waiting for a slot)."""
        return tuple(self._active.values())

    def health(self) -> tuple[NodeHealth, ...]:
        """A snapshot of every node, depth first: load, failures, breakers, trips."""
        now = trio.current_time()
        records: list[NodeHealth] = []
        root_stats = [len(self._active), *self._ended]
        self._health(self.root, root_stats, None, now, records)
        return tuple(records)

    def _health(
        self,
        node: Node,
        stats: list[int],
        breaker: str | None,
        now: float,
        records: list[NodeHealth],
    ) -> None:
        definition = node.definition
        extra: dict[str, Any] = {}
        if isinstance(node, SupervisorNode):
            extra = {
                "tripped": node.gate.tripped,
                "recent_failures": node.gate.recent_failures(now),
            }
        elif isinstance(node, AgentPoolNode):
            extra = {"live": node.live, "restarts": node.restarts}
        records.append(
            NodeHealth(
                path=definition.path,
                layer=definition.layer.value,
                in_flight=stats[0],
                succeeded=stats[1],
                failed=stats[2],
                breaker=breaker,
                **extra,
            )
        )
        if isinstance(node, SupervisorNode):
            for name, child in node.children.items():
                state = node.breakers.get(name)
                self._health(
                    child,
                    node.stats[name],
                    state.state(now).value if state is not None else None,
                    now,
                    records,
                )

    async def submit(
        self,
        goal: str,
        *,
        input: Any = None,
        timeout: float | None = None,
        goal_id: str | None = None,
        memory: Mapping[str, Any] | None = None,
        checkpoints: Mapping[str, Any] | None = None,
        on_checkpoint: CheckpointWriter | None = None,
        budget: Budget | None = None,
    ) -> GoalHandle:
        """Start ``goal`` and return its handle at once.

        ``timeout`` (seconds) is the goal's deadline: past it everything below is
        cancelled and the outcome is TIMED_OUT. ``checkpoints`` maps step keys to outputs
        recorded earlier: those steps are not run again (the daemon resumes goals this
        way); ``on_checkpoint`` is awaited with each newly completed step's key and
        output. ``budget`` limits tokens, cost, leaf attempts and time: past it the goal
        is cancelled and ends BUDGET_EXHAUSTED (TIMED_OUT for time).

        Raises :class:`RunnerClosed` after intake stopped, ``ValueError`` for an empty
        goal or goal id, a bad timeout or a goal id in flight, and ``TypeError`` for an
        input that is not JSON-serialisable or an argument of the wrong type (a
        ``goal_id`` that is not a string, a ``budget`` that is not a :class:`Budget`, a
        ``memory`` or ``checkpoints`` that is not a mapping, an ``on_checkpoint`` that is
        not callable).
        """
        if not self._accepting:
            raise RunnerClosed("the runner has stopped accepting goals")
        if not isinstance(goal, str) or not goal.strip():
            raise ValueError(f"goal must be a non-empty string, got {goal!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if goal_id is not None and not isinstance(goal_id, str):
            raise TypeError(f"goal_id must be a string, got {goal_id!r}")
        if goal_id == "":
            raise ValueError("goal_id must not be empty (omit it for a generated id)")
        if budget is not None and not isinstance(budget, Budget):
            raise TypeError(f"budget must be an ov.Budget, got {type(budget).__name__}")
        if memory is not None and not isinstance(memory, Mapping):
            raise TypeError(f"memory must be a mapping, got {type(memory).__name__}")
        if checkpoints is not None and not isinstance(checkpoints, Mapping):
            raise TypeError(f"checkpoints must be a mapping, got {type(checkpoints).__name__}")
        if on_checkpoint is not None and not callable(on_checkpoint):
            raise TypeError(f"on_checkpoint must be callable, got {on_checkpoint!r}")
        try:
            json.dumps(input)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"goal input must be JSON-serialisable: {exc}") from None
        goal_id = goal_id or uuid.uuid4().hex
        if goal_id in self._active:
            raise ValueError(f"goal id {goal_id!r} is already in flight")
        budget = budget or Budget()
        limits = [t for t in (timeout, self.root.definition.timeout, budget.time) if t is not None]
        deadline = trio.current_time() + min(limits) if limits else math.inf
        shared = Memory(memory)
        handle = GoalHandle(goal_id, goal, trio.CancelScope(deadline=deadline), shared)
        run = GoalRun(
            goal_id=goal_id,
            goal=goal,
            runtime=self.runtime,
            memory=shared,
            started=trio.current_time(),
            checkpoints=dict(checkpoints or {}),
            on_checkpoint=on_checkpoint,
            usage=Usage(budget=budget, on_exhausted=handle._scope.cancel),
        )
        self._active[goal_id] = handle
        # The goal's place in line is taken now, in submission order.
        ticket = self._admission.ticket() if self._admission is not None else None
        self._nursery.start_soon(self._run_goal, handle, run, input, ticket, name=f"goal {goal_id}")
        return handle

    async def _run_goal(
        self, handle: GoalHandle, run: GoalRun, input: Any, ticket: Ticket | None
    ) -> None:
        started_at = time.time()
        status = Status.CANCELLED
        output: Any = None
        try:
            with self.runtime.instrumentation.goal(
                tree=self.tree,
                goal_id=run.goal_id,
                goal=run.goal,
                layer=self.root.definition.layer,
            ) as goal_span:
                with handle._scope:
                    if self._admission is not None and ticket is not None:
                        try:
                            await self._admission.wait(ticket)
                            status, output = await self._run_root(run, input, goal_span)
                        finally:
                            self._admission.release(ticket)
                    else:
                        status, output = await self._run_root(run, input, goal_span)
                if handle._scope.cancelled_caught:
                    timed_out = (
                        not handle._cancel_requested
                        and trio.current_time() >= handle._scope.deadline
                    )
                    status = Status.TIMED_OUT if timed_out else Status.CANCELLED
                if run.usage.exhausted is not None:
                    status = Status.BUDGET_EXHAUSTED
                goal_span.set_attributes({"overstory.goal.status": status.value})
        finally:
            del self._active[handle.id]
            if status is Status.SUCCEEDED:
                self._ended[0] += 1
            elif status is not Status.CANCELLED:
                self._ended[1] += 1
            handle._finish(
                Outcome(
                    goal_id=run.goal_id,
                    goal=run.goal,
                    tree=self.tree,
                    status=status,
                    output=output if status is Status.SUCCEEDED else None,
                    steps=tuple(run.steps),
                    failures=tuple(run.failures),
                    memory=run.memory.snapshot(),
                    usage=run.usage.summary(),
                    started_at=started_at,
                    duration=run.elapsed(),
                )
            )
            run.close()

    async def _run_root(self, run: GoalRun, input: Any, goal_span: SpanHook) -> tuple[Status, Any]:
        root = self.root.definition
        run.started = trio.current_time()
        task = Task(goal=run.goal, goal_id=run.goal_id, input=input)
        ctx = Context(
            task=task,
            goal=run.goal,
            goal_id=run.goal_id,
            path=root.path,
            attempt=1,
            outputs={},
            memory=run.memory,
            layer=root.layer.value,
            usage=run.usage,
        )
        try:
            with (
                using_context(ctx),
                self.runtime.instrumentation.invoke(
                    layer=root.layer,
                    name=root.name,
                    path=root.path,
                    description=root.description,
                    goal_id=run.goal_id,
                    step=None,
                    attempt=1,
                    previous=None,
                    attributes={"overstory.strategy": self.root.spec.strategy.value},
                ) as span,
            ):
                try:
                    output = await self.root.execute(task, ctx, run, span)
                    if isinstance(output, UpwardHandoff):
                        handoff = output.handoff
                        raise NoCandidate(
                            root.path,
                            root.name,
                            f"no agent in the tree fits the hand-off from {output.origin} "
                            f"to {handoff.to or handoff.goal!r}",
                        )
                except Exception as exc:
                    span.record_failure(exc)
                    raise
        except Exception as exc:
            goal_span.record_failure(exc)
            run.fail_once(
                path=getattr(exc, "path", root.path) if isinstance(exc, Failure) else root.path,
                layer=root.layer.value,
                step=None,
                attempt=1,
                error=exc,
            )
            return Status.FAILED, None
        return Status.SUCCEEDED, output

    async def _close(self, grace: float, pools: list[AgentPoolNode]) -> tuple[str, ...]:
        """Stop intake, give in-flight goals ``grace`` seconds, cancel the rest; return
        the ids of the goals it cancelled. The grace wait ends early if we are cancelled.

        Before cancelling, the pools stop restarting instances whose task is cancelled:
        those are stopped once, in order, with the rest (and reported), not restarted.
        """
        self._accepting = False
        try:
            if grace > 0 and self._active:
                with trio.move_on_after(grace):
                    for handle in list(self._active.values()):
                        await handle.outcome()
        finally:
            for pool in pools:
                pool.closing = True
            remaining = list(self._active.values())
            for handle in remaining:
                handle.cancel()
        return tuple(handle.id for handle in remaining)


def _instantiate(
    definition: NodeDef,
    runtime: Runtime,
    *,
    fail_fast: bool,
    pools: list[AgentPoolNode],
    on_failure: Any,
) -> Node:
    if isinstance(definition.spec, FunctionLeaf):
        return FunctionLeafNode(definition)
    if isinstance(definition.spec, AgentSpec):
        pool = AgentPoolNode(definition, runtime, on_failure=on_failure, fail_fast=fail_fast)
        pools.append(pool)
        return pool
    owner: list[SupervisorNode] = []
    children = [
        _instantiate(
            child,
            runtime,
            fail_fast=fail_fast,
            pools=pools,
            on_failure=lambda: owner[0].count_failure(),
        )
        for child in definition.children
    ]
    node = SupervisorNode(definition, children, runtime)
    owner.append(node)
    return node


async def _stop_pools(pools: list[AgentPoolNode]) -> list[ShutdownRecord]:
    records: list[ShutdownRecord] = []
    with trio.CancelScope(shield=True):
        for pool in reversed(pools):
            records.extend(await pool.stop_all())
    return records


def _report(records: list[ShutdownRecord], cancelled: tuple[str, ...]) -> ShutdownReport:
    report = ShutdownReport(
        stopped=tuple(r.path for r in records),
        overran=tuple(r.path for r in records if r.overran),
        failed=tuple(r.path for r in records if r.error is not None),
        cancelled_goals=cancelled,
    )
    for path in report.overran:
        logger.warning("agent %s: stop() overran its stop_timeout and was abandoned", path)
    for record in records:
        if record.error is not None:
            logger.warning("agent %s: stop() raised %s", record.path, record.error)
    return report


@asynccontextmanager
async def open_runner(
    *,
    tree: str,
    blueprint: NodeDef,
    reviewer: Reviewer | None,
    on_event: EventSink | None,
    instrumentation: Instrumentation | None,
    seed: int | None,
    max_concurrent: int | None,
    grace: float,
    start_failure: str,
) -> AsyncIterator[Runner]:
    """The body of ``Tree.running()``; see there."""
    if start_failure not in ("fail", "continue"):
        raise ValueError(f"start_failure must be 'fail' or 'continue', got {start_failure!r}")
    if max_concurrent is not None and (
        isinstance(max_concurrent, bool)
        or not isinstance(max_concurrent, int)
        or max_concurrent < 1
    ):
        raise ValueError(
            f"max_concurrent must be a whole number at least 1, got {max_concurrent!r}"
        )
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
        raise ValueError(f"grace must be a number of seconds at least 0, got {grace!r}")
    if reviewer is None and blueprint.needs_review:
        raise ConfigurationError(
            f"{blueprint.path}: the tree has review points but no reviewer was given; "
            "pass reviewer= (ov.auto_approve approves everything)"
        )
    runtime = Runtime(
        tree=tree,
        instrumentation=instrumentation or current_instrumentation(),
        reviewer=reviewer,
        on_event=on_event,
        rng=random.Random(seed),
    )
    pools: list[AgentPoolNode] = []
    root = _instantiate(
        blueprint,
        runtime,
        fail_fast=start_failure == "fail",
        pools=pools,
        on_failure=lambda: None,
    )
    assert isinstance(root, SupervisorNode)
    start_error: StartError | None = None
    async with trio.open_nursery() as services:
        started: list[AgentPoolNode] = []
        try:
            for pool in pools:
                started.append(pool)
                await pool.start(services)
        except StartError as exc:
            start_error = exc
            await _stop_pools(started)
        if start_error is None:
            runner = Runner(
                tree=tree,
                root=root,
                runtime=runtime,
                nursery=services,
                max_concurrent=max_concurrent,
            )
            cancelled: tuple[str, ...] = ()
            try:
                async with trio.open_nursery() as goals:
                    runner._nursery = goals
                    try:
                        yield runner
                    finally:
                        cancelled = await runner._close(grace, started)
            finally:
                runner.report = _report(await _stop_pools(started), cancelled)
        services.cancel_scope.cancel()
    if start_error is not None:
        raise start_error
