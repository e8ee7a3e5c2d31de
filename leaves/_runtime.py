"""Leaf nodes at run time: function leaves, and pools of stateful agent instances.

A task always runs in the caller's task, inside the goal's cancel scope: an agent
instance is checked out of its pool like a connection, used, and checked back in. Only
the instances' lifecycle (start, restart, stop) runs in the tree's service nursery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from overstory._errors import AgentUnavailable, StartError
from overstory.hierarchy._blueprint import NodeDef
from overstory.hierarchy._context import Context
from overstory.hierarchy._task import Task
from overstory.leaves._agent import Agent, AgentSpec
from overstory.leaves._leaf import FunctionLeaf
from overstory.leaves._mailbox import Mailbox
from overstory.supervisors._events import EventKind
from overstory.supervisors._policies import Restart
from overstory.supervisors._runtime import GoalRun, Runtime
from overstory.telemetry._hooks import SpanHook

__all__ = ["AgentPoolNode", "FunctionLeafNode", "ShutdownRecord"]

# Looked up once: on Python 3.11 an ``Enum.MEMBER`` lookup allocates a method wrapper,
# and every task an agent handles is checked in.
_PERMANENT, _TEMPORARY = Restart.PERMANENT, Restart.TEMPORARY


class FunctionLeafNode:
    """A function leaf: stateless, optionally limited to ``concurrency`` calls at once."""

    __slots__ = ("_fn", "_limiter", "definition", "direct")

    def __init__(self, definition: NodeDef) -> None:
        spec = definition.spec
        assert isinstance(spec, FunctionLeaf)
        self.definition = definition
        self._fn = spec.fn
        self._limiter = (
            trio.CapacityLimiter(spec.concurrency) if spec.concurrency is not None else None
        )
        #: The function itself when a call needs nothing around it: the caller may await
        #: it instead of :meth:`execute`, saving a coroutine per call.
        self.direct = self._fn if self._limiter is None else None

    def healthy(self, now: float) -> bool:
        return True

    def steady(self) -> bool:
        return True

    async def execute(self, task: Task, ctx: Context, run: GoalRun, span: SpanHook) -> Any:
        if self._limiter is None:
            return await self._fn(task, ctx)
        async with self._limiter:
            return await self._fn(task, ctx)


@attrs.frozen(kw_only=True)
class ShutdownRecord:
    """How one agent instance's ``stop()`` went at shutdown."""

    path: str
    overran: bool
    error: str | None = None


@attrs.define(eq=False)
class _Instance:
    index: int
    agent: Agent | None = None
    # The pool sends how a checked-out task crashed ("raised" or "cancelled") and the
    # backoff chosen before the restart.
    crashes: Mailbox[tuple[str, float]] = attrs.field(factory=Mailbox)
    retired: bool = False
    restarting: bool = False
    # Restarts in a row (reset after a healthy run of ``backoff.reset_after``).
    restarts: int = 0
    healthy_since: float = 0.0


def _retired(instance: _Instance) -> bool:
    # A function, so that type checkers do not assume the flag kept its value across awaits.
    return instance.retired


class AgentPoolNode:
    """``concurrency`` instances of one :class:`Agent` class, each doing one task at a time.

    Tasks wait for a free instance, at most ``queue_limit`` of them; beyond that, or when
    no instance is live, ``execute`` fails at once with :class:`AgentUnavailable`.
    """

    def __init__(
        self,
        definition: NodeDef,
        runtime: Runtime,
        *,
        on_failure: Callable[[], None],
        fail_fast: bool,
    ) -> None:
        spec = definition.spec
        assert isinstance(spec, AgentSpec)
        self.definition = definition
        self.spec = spec
        self._runtime = runtime
        self._on_failure = on_failure
        self._fail_fast = fail_fast
        self._free: Mailbox[_Instance] = Mailbox()
        self._instances: list[_Instance] = []
        self._live = 0
        self._restarting = 0
        self._waiting = 0
        self._remaining = spec.concurrency
        self.restarts = 0
        self.stopped: list[ShutdownRecord] = []
        #: Set when the tree shuts down: an instance whose task is cancelled then keeps
        #: its agent for stop_all() instead of restarting.
        self.closing = False

    @property
    def path(self) -> str:
        return self.definition.path

    @property
    def live(self) -> int:
        """Instances started and not crashed (busy or free)."""
        return self._live

    def healthy(self, now: float) -> bool:
        """Live instances, or instances coming back from a crash (their tasks queue);
        instances whose start() keeps failing do not count."""
        return self._live > 0 or self._restarting > 0

    def steady(self) -> bool:
        """Never: instances crash and retire without the runtime's health changing."""
        return False

    def _settle_restart(self, instance: _Instance) -> None:
        if instance.restarting:
            instance.restarting = False
            self._restarting -= 1

    async def start(self, nursery: trio.Nursery) -> None:
        """Start every instance, in order; returns when each has started once.

        With ``fail_fast``, the first ``start()`` that raises aborts with
        :class:`StartError`; otherwise the instance keeps retrying with backoff in the
        background and the pool starts with fewer live instances.
        """
        for index in range(self.spec.concurrency):
            instance = _Instance(index)
            self._instances.append(instance)
            await nursery.start(self._manage, instance)

    def _instance_path(self, instance: _Instance) -> str:
        return self.path if self.spec.concurrency == 1 else f"{self.path}#{instance.index}"

    async def _manage(
        self, instance: _Instance, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        reported = False
        while not instance.retired:
            agent = self.spec.cls()
            try:
                with trio.fail_after(self.spec.start_timeout):
                    await agent.start()
            except Exception as exc:
                self._settle_restart(instance)
                self._on_failure()
                self._runtime.report(
                    None,
                    EventKind.START_FAILED,
                    self._instance_path(instance),
                    attempt=instance.restarts + 1,
                    error_type=type(exc).__name__,
                    message=str(exc),
                )
                if not reported:
                    if self._fail_fast:
                        raise StartError(self._instance_path(instance), repr(exc)) from exc
                    reported = True
                    task_status.started()
                delay = self.spec.backoff.delay(instance.restarts, self._runtime.rng.random())
                instance.restarts += 1
                await trio.sleep(delay)
                continue
            if _retired(instance):
                # The pool was stopped while this instance was starting.
                instance.agent = agent
                await self._stop_instance(instance)
                return
            instance.agent = agent
            self._settle_restart(instance)
            self._live += 1
            self._free.put(instance)
            if not reported:
                reported = True
                task_status.started()
            instance.healthy_since = trio.current_time()
            crash = await instance.crashes.take()
            assert crash is not None  # the pool never closes an instance's mailbox
            how, delay = crash
            if how == "raised" and self.spec.restart is _TEMPORARY:
                instance.retired = True
            await self._stop_instance(instance)
            if instance.retired:
                self._settle_restart(instance)
                self._retire()
                return
            if delay > 0:
                await trio.sleep(delay)
            else:
                # No backoff: still a cancellation point, but without giving up the turn
                # (trio.sleep(0) would), which cost a restart one more scheduler pass.
                await trio.lowlevel.checkpoint_if_cancelled()

    def _retire(self) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            # Nothing will ever serve again: wake every waiter (AgentUnavailable).
            self._free.close()

    async def _stop_instance(self, instance: _Instance) -> tuple[bool, str | None] | None:
        """Stop the instance's agent, if it has one: (whether it overran, its error)."""
        agent, instance.agent = instance.agent, None
        if agent is None:
            return None
        error: str | None = None
        # Shielded from the outside, bounded by its own deadline: one scope does both.
        with trio.CancelScope(
            shield=True, deadline=trio.current_time() + self.spec.stop_timeout
        ) as bound:
            try:
                await agent.stop()
            except Exception as exc:
                error = repr(exc)
        return bound.cancelled_caught, error

    async def stop_all(self) -> list[ShutdownRecord]:
        """Stop every started instance, in reverse start order, each bounded by
        ``stop_timeout``; retire the instances so none restarts. Shielded by the caller."""
        records: list[ShutdownRecord] = []
        for instance in reversed(self._instances):
            instance.retired = True
            self._settle_restart(instance)
            if instance.agent is not None:
                self._live -= 1
            stopped = await self._stop_instance(instance)
            if stopped is not None:
                overran, error = stopped
                records.append(
                    ShutdownRecord(path=self._instance_path(instance), overran=overran, error=error)
                )
        self.stopped = records
        return records

    async def execute(self, task: Task, ctx: Context, run: GoalRun, span: SpanHook) -> Any:
        if self._live == 0 and self._restarting == 0:
            raise AgentUnavailable(self.path, "no live instance")
        instance = self._free.take_nowait()
        if instance is None:
            if self._free.closed:
                raise AgentUnavailable(self.path, "no live instance")
            instance = await self._wait_for_instance()
        agent = instance.agent
        assert agent is not None
        how = "cancelled"
        # The failure's type, not the failure: this frame is in its traceback, and a
        # local holding it would make a reference cycle that only the collector frees.
        error_type: str | None = None
        try:
            result = await agent.handle(task, ctx)
            how = "returned"
            return result
        except Exception as exc:
            how, error_type = "raised", type(exc).__name__
            raise
        finally:
            self._check_in(instance, how, error_type, run, span)

    async def _wait_for_instance(self) -> _Instance:
        if self._waiting >= self.spec.queue_limit:
            raise AgentUnavailable(
                self.path, f"all instances busy and {self._waiting} tasks already waiting"
            )
        self._waiting += 1
        try:
            instance = await self._free.take()
        finally:
            self._waiting -= 1
        if instance is None:
            raise AgentUnavailable(self.path, "no live instance")
        return instance

    def _check_in(
        self,
        instance: _Instance,
        how: str,
        error_type: str | None,
        run: GoalRun,
        span: SpanHook,
    ) -> None:
        restart = self.spec.restart
        if how == "returned" or (how == "cancelled" and restart is not _PERMANENT):
            self._free.put(instance)
            return
        if how == "cancelled" and self.closing:
            return  # stop_all() stops its agent, in order, and reports how it went
        self._live -= 1
        self._restarting += 1
        instance.restarting = True
        delay = 0.0
        if not (how == "raised" and restart is _TEMPORARY):
            # Decided now, while the crashed attempt's span is open, so the restart is
            # recorded where it happened; the instance manager stops, waits and restarts.
            backoff = self.spec.backoff
            if trio.current_time() - instance.healthy_since >= backoff.reset_after:
                instance.restarts = 0
            delay = backoff.delay(instance.restarts, self._runtime.rng.random())
            instance.restarts += 1
            self.restarts += 1
            if self._runtime.listening:  # a crash loop restarts thousands of times
                self._emit_restart(instance, how, error_type, run, span, delay)
        instance.crashes.put((how, delay))

    def _emit_restart(
        self,
        instance: _Instance,
        how: str,
        error_type: str | None,
        run: GoalRun,
        span: SpanHook,
        delay: float,
    ) -> None:
        self._runtime.report(
            span,
            EventKind.RESTART,
            self._instance_path(instance),
            goal_id=run.goal_id,
            attempt=instance.restarts,
            agent=self._instance_path(instance),
            delay=delay,
            error_type=error_type,
            message=f"handle() {how}",
        )
