"""Semantic 8 and GUIDE scenarios 1, 7, 8: stateful agents, restart types, start and stop."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import trio

import overstory as ov

ONCE = ov.Retry(attempts=1)


def make_agent(
    restart: ov.Restart, behaviour: str, log: list[str], **attrs_: Any
) -> type[ov.Agent]:
    """An agent whose instances log their lifecycle; ``handle`` returns, raises or hangs."""

    class Worker(ov.Agent):
        """Does work."""

        instances: ClassVar[int] = 0

        def __init__(self) -> None:
            Worker.instances += 1
            self.number = Worker.instances

        async def start(self) -> None:
            log.append(f"start {self.number}")

        async def handle(self, task: ov.Task, ctx: ov.Context) -> Any:
            log.append(f"handle {self.number}")
            if behaviour == "raises":
                raise RuntimeError("crash")
            if behaviour == "hangs":
                await trio.sleep_forever()
            return self.number

        async def stop(self) -> None:
            log.append(f"stop {self.number}")

    Worker.restart = restart
    Worker.backoff = ov.Backoff(initial=1.0, cap=1.0, jitter=0.0)
    for key, value in attrs_.items():
        setattr(Worker, key, value)
    return Worker


# What happens to the instance after one task, per restart type and way the task ended.
MATRIX = [
    (ov.Restart.PERMANENT, "returns", "kept"),
    (ov.Restart.PERMANENT, "hangs", "restarted"),
    (ov.Restart.PERMANENT, "raises", "restarted"),
    (ov.Restart.TRANSIENT, "returns", "kept"),
    (ov.Restart.TRANSIENT, "hangs", "kept"),
    (ov.Restart.TRANSIENT, "raises", "restarted"),
    (ov.Restart.TEMPORARY, "returns", "kept"),
    (ov.Restart.TEMPORARY, "hangs", "kept"),
    (ov.Restart.TEMPORARY, "raises", "removed"),
]


@pytest.mark.parametrize(("restart", "behaviour", "expected"), MATRIX)
async def test_restart_type_matrix(
    autojump_clock: trio.abc.Clock, restart: ov.Restart, behaviour: str, expected: str
) -> None:
    """Scenario 1: permanent/transient/temporary × returns/is cancelled/raises."""
    log: list[str] = []
    agent = make_agent(restart, behaviour, log)
    tree = ov.Tree("t", ov.Tactical("team", children=[agent], retry=ONCE))
    async with tree.running() as runner:
        handle = await runner.submit("go", timeout=5.0 if behaviour == "hangs" else None)
        await handle.outcome()
        await trio.sleep(10.0)  # past any restart backoff
        (health,) = [h for h in runner.health() if h.path == "t/team/Worker"]
    assert log[:2] == ["start 1", "handle 1"]
    if expected == "kept":
        assert log == ["start 1", "handle 1", "stop 1"]
        assert (health.live, health.restarts) == (1, 0)
    elif expected == "restarted":
        assert log == ["start 1", "handle 1", "stop 1", "start 2", "stop 2"]
        assert (health.live, health.restarts) == (1, 1)
    else:
        assert log == ["start 1", "handle 1", "stop 1"]
        assert (health.live, health.restarts) == (0, 0)


async def test_removed_temporary_agent_is_routed_out(autojump_clock: trio.abc.Clock) -> None:
    """A temporary agent removed after a crash leaves the team; routing uses the others."""
    log: list[str] = []
    agent = make_agent(ov.Restart.TEMPORARY, "raises", log)

    @ov.leaf
    async def backup(task: ov.Task, ctx: ov.Context) -> str:
        return "backup"

    tree = ov.Tree("t", ov.Tactical("team", children=[agent, backup], retry=ONCE))
    async with tree.running() as runner:
        first = await (await runner.submit("go")).outcome()
        second = await (await runner.submit("go")).outcome()
    assert first.output == second.output == "backup"
    assert log.count("handle 1") == 1


async def test_concurrency_instances_each_take_one_task(autojump_clock: trio.abc.Clock) -> None:
    """`concurrency` instances serve tasks in parallel, one task each; extra tasks queue."""
    log: list[str] = []
    busy: list[int] = []

    class Slow(ov.Agent):
        """Slow worker."""

        concurrency = 2

        async def handle(self, task: ov.Task, ctx: ov.Context) -> float:
            busy.append(id(self))
            log.append(f"{trio.current_time():.0f}")
            await trio.sleep(10)
            return trio.current_time()

    tree = ov.Tree("t", ov.Tactical("team", children=[Slow]))
    async with tree.running() as runner:
        handles = [await runner.submit("go") for _ in range(3)]
        ends = sorted([(await h.outcome()).output for h in handles])
    assert ends == [10.0, 10.0, 20.0]
    assert len(set(busy)) == 2


async def test_queue_limit_fails_extra_tasks_as_unavailable(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Beyond `queue_limit` waiting tasks, an attempt fails at once with AgentUnavailable."""

    class One(ov.Agent):
        """Single instance."""

        queue_limit = 1

        async def handle(self, task: ov.Task, ctx: ov.Context) -> str:
            await trio.sleep(10)
            return "done"

    tree = ov.Tree("t", ov.Tactical("team", children=[One], retry=ONCE))
    async with tree.running() as runner:
        handles = [await runner.submit("go") for _ in range(3)]
        outcomes = [await h.outcome() for h in handles]
    statuses = sorted(o.status.value for o in outcomes)
    assert statuses == ["failed", "succeeded", "succeeded"]
    (failed,) = [o for o in outcomes if not o.ok]
    assert failed.failures[0].error_type == "AgentUnavailable"


async def test_start_failure_fails_tree_start_with_path(autojump_clock: trio.abc.Clock) -> None:
    """Scenario 8: a start() that raises aborts running() with StartError naming the agent;
    agents started before it are stopped in reverse order."""
    log: list[str] = []

    class Good(ov.Agent):
        """Starts fine."""

        async def start(self) -> None:
            log.append("good start")

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None: ...

        async def stop(self) -> None:
            log.append("good stop")

    class Bad(ov.Agent):
        """Cannot start."""

        async def start(self) -> None:
            raise OSError("no model file")

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None: ...

    tree = ov.Tree("t", ov.Tactical("team", children=[Good, Bad]))
    with pytest.raises(ov.StartError, match=r"t/team/Bad") as info:
        async with tree.running():
            pytest.fail("the body must not run")
    assert isinstance(info.value.__cause__, OSError)
    assert log == ["good start", "good stop"]


async def test_start_failure_can_continue_degraded(autojump_clock: trio.abc.Clock) -> None:
    """With start_failure="continue" the tree starts, the failing instance retries with
    backoff (counting toward intensity) and routing skips it until it is live."""
    starts: list[float] = []

    class Late(ov.Agent):
        """Starts on the third try."""

        backoff = ov.Backoff(initial=1.0, cap=8.0, jitter=0.0)

        async def start(self) -> None:
            starts.append(trio.current_time())
            if len(starts) < 3:
                raise OSError("not yet")

        async def handle(self, task: ov.Task, ctx: ov.Context) -> str:
            return "late"

    @ov.leaf
    async def always(task: ov.Task, ctx: ov.Context) -> str:
        return "always"

    events: list[ov.SupervisionEvent] = []
    tree = ov.Tree("t", ov.Tactical("team", children=[Late, always]))
    async with tree.running(start_failure="continue", on_event=events.append) as runner:
        early = await (await runner.submit("go")).outcome()
        await trio.sleep(5)
        late = await (await runner.submit("go")).outcome()
        team = runner.root
        failures = team.gate.recent_failures(trio.current_time())
    assert early.output == "always"
    assert late.output == "late"
    assert starts == [0.0, 1.0, 3.0]
    assert failures == 2
    assert [e.kind for e in events].count(ov.EventKind.START_FAILED) == 2


async def test_shutdown_stops_in_reverse_order_and_reports_overrun(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Scenario 7: leaving running() stops agents in reverse start order, each stop()
    shielded and bounded; one that overruns is reported and abandoned."""
    log: list[str] = []

    def agent(name: str, stop_for: float) -> type[ov.Agent]:
        class A(ov.Agent):
            """An agent."""

            stop_timeout = 2.0

            async def start(self) -> None:
                log.append(f"start {name}")

            async def handle(self, task: ov.Task, ctx: ov.Context) -> None: ...

            async def stop(self) -> None:
                log.append(f"stop {name}")
                await trio.sleep(stop_for)
                log.append(f"stopped {name}")

        A.name = name
        return A

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            children=[
                ov.Tactical("x", children=[agent("one", 0.5), agent("two", 100.0)]),
                ov.Tactical("y", children=[agent("three", 0.0)]),
            ],
        ),
    )
    async with tree.running() as runner:
        started_at = trio.current_time()
    assert log == [
        "start one", "start two", "start three",
        "stop three", "stopped three", "stop two", "stop one", "stopped one",
    ]  # fmt: skip
    assert runner.report is not None
    assert runner.report.stopped == ("t/boss/y/three", "t/boss/x/two", "t/boss/x/one")
    assert runner.report.overran == ("t/boss/x/two",)
    assert trio.current_time() - started_at == pytest.approx(2.5)


async def test_shutdown_cancels_in_flight_goals_and_runs_finally(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Leaving running() cancels in-flight goals (CANCELLED), their finally blocks run, and
    no task is left behind."""
    cleaned: list[str] = []

    @ov.leaf
    async def forever(task: ov.Task, ctx: ov.Context) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(task.goal)

    tree = ov.Tree("t", ov.Tactical("team", children=[forever]))
    async with tree.running() as runner:
        handles = [await runner.submit(f"g{i}") for i in range(3)]
        await trio.sleep(1)
    outcomes = [await h.outcome() for h in handles]
    assert {o.status for o in outcomes} == {ov.Status.CANCELLED}
    assert sorted(cleaned) == ["g0", "g1", "g2"]
    assert runner.report is not None
    assert len(runner.report.cancelled_goals) == 3
    assert runner.in_flight == ()


async def test_grace_lets_in_flight_goals_finish(autojump_clock: trio.abc.Clock) -> None:
    """With grace=G, leaving running() waits up to G seconds for goals before cancelling."""

    @ov.leaf
    async def takes(task: ov.Task, ctx: ov.Context) -> str:
        await trio.sleep(float(task.input))
        return "finished"

    tree = ov.Tree("t", ov.Tactical("team", children=[takes]))
    async with tree.running(grace=10.0) as runner:
        quick = await runner.submit("q", input=5)
        slow = await runner.submit("s", input=50)
    assert (await quick.outcome()).status is ov.Status.SUCCEEDED
    assert (await slow.outcome()).status is ov.Status.CANCELLED
    assert trio.current_time() == 10.0


async def test_submit_after_exit_is_refused() -> None:
    """Once running() has exited, submit() raises RunnerClosed."""

    @ov.leaf
    async def noop(task: ov.Task, ctx: ov.Context) -> None:
        return None

    async with ov.Tree("t", ov.Tactical("team", children=[noop])).running() as runner:
        pass
    with pytest.raises(ov.RunnerClosed):
        await runner.submit("late")


async def test_start_that_hangs_is_a_start_failure(autojump_clock: trio.abc.Clock) -> None:
    """A start() running past start_timeout fails the tree's start like one that raises."""

    class Hangs(ov.Agent):
        """Never finishes starting."""

        start_timeout = 3.0

        async def start(self) -> None:
            await trio.sleep_forever()

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None: ...

    tree = ov.Tree("t", ov.Tactical("team", children=[Hangs]))
    with pytest.raises(ov.StartError, match=r"t/team/Hangs: TooSlowError"):
        async with tree.running():
            pytest.fail("must not start")
    assert trio.current_time() == 3.0


async def test_stop_that_raises_is_reported_and_others_still_stop(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An agent whose stop() raises is reported; the agents before it still stop."""
    log: list[str] = []

    class First(ov.Agent):
        """Stops fine."""

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None: ...

        async def stop(self) -> None:
            log.append("first stopped")

    class Second(ov.Agent):
        """Fails to stop."""

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None: ...

        async def stop(self) -> None:
            raise OSError("socket already closed")

    async with ov.Tree("t", ov.Tactical("team", children=[First, Second])).running() as runner:
        pass
    assert log == ["first stopped"]
    assert runner.report is not None
    assert runner.report.failed == ("t/team/Second",)
    assert runner.report.stopped == ("t/team/Second", "t/team/First")


async def test_handle_crash_restart_while_goals_continue(autojump_clock: trio.abc.Clock) -> None:
    """Fault injection: two tasks crash their instances (two seconds apart); each instance is
    restarted in the background while the other keeps serving, and every goal succeeds."""
    handled: list[int] = []

    class Sometimes(ov.Agent):
        """Crashes on tasks 1 and 4."""

        concurrency = 2
        backoff = ov.Backoff(initial=0.5, cap=0.5, jitter=0.0)

        async def handle(self, task: ov.Task, ctx: ov.Context) -> int:
            handled.append(task.input)
            await trio.sleep(1)
            if task.input in (1, 4) and ctx.attempt == 1:
                raise RuntimeError("crash")
            return int(task.input)

    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[Sometimes],
            retry=ov.Retry(attempts=3, backoff=ov.Backoff(initial=1.0, cap=1.0, jitter=0.0)),
            intensity=ov.Intensity(max_failures=100),
            breaker=None,
        ),
    )
    async with tree.running() as runner:
        handles = [await runner.submit("go", input=i) for i in range(6)]
        outputs = [(await h.outcome()).output for h in handles]
        (health,) = [h for h in runner.health() if h.path == "t/team/Sometimes"]
    assert outputs == list(range(6))
    assert health.restarts == 2
    assert health.live == 2


async def test_tasks_wait_for_an_instance_that_is_restarting(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A single-instance agent that crashed is 'coming back', not unavailable: the retry
    queues for the restarted instance instead of failing at once."""
    attempts: list[tuple[int, float]] = []

    class Once(ov.Agent):
        """Crashes on its first task."""

        backoff = ov.Backoff(initial=5.0, cap=5.0, jitter=0.0)

        async def handle(self, task: ov.Task, ctx: ov.Context) -> str:
            attempts.append((ctx.attempt, trio.current_time()))
            if ctx.attempt == 1:
                raise RuntimeError("crash")
            return "ok"

    retry = ov.Retry(attempts=2, backoff=ov.Backoff(initial=0.1, cap=0.1, jitter=0.0))
    tree = ov.Tree("t", ov.Tactical("team", children=[Once], retry=retry))
    outcome = await tree.run("go")
    assert outcome.ok
    assert attempts == [(1, 0.0), (2, 5.0)]


async def test_an_agent_busy_at_shutdown_is_stopped_once_and_reported(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A PERMANENT agent whose task the shutdown cancels is not restarted (with no
    backoff it used to start again): it is stopped once, with the others, and a stop()
    that raises is in runner.report."""
    lifecycle: list[str] = []

    class Db(ov.Agent):
        """A database agent."""

        restart = ov.Restart.PERMANENT
        backoff = ov.Backoff(initial=0.0, cap=0.0, jitter=0.0)

        async def start(self) -> None:
            lifecycle.append("start")

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None:
            await trio.sleep(100)

        async def stop(self) -> None:
            lifecycle.append("stop")
            raise RuntimeError("connection leak")

    async with ov.Tree("t", ov.Tactical("team", children=[Db])).running() as runner:
        handle = await runner.submit("g")
        await trio.sleep(1)
    assert handle.status is ov.Status.CANCELLED
    assert lifecycle == ["start", "stop"]
    assert runner.report is not None
    assert runner.report.failed == ("t/team/Db",)
    assert runner.report.cancelled_goals == (handle.id,)
