"""A finished goal leaves nothing behind in the runner: a long-running process does not grow.

No timing here: the garbage collector is asked which runtime objects are still alive.
"""

from __future__ import annotations

import gc
from typing import Any, NamedTuple

import pytest
import trio
import trio.lowlevel
import trio.testing
from support import collector_off
from telemetry_helpers import memory_telemetry

import overstory as ov
from overstory.hierarchy._review import Reviewer
from overstory.supervisors._runtime import GoalRun
from overstory.supervisors._scheduler import PlanRun
from overstory.supervisors._units import StepRun


@ov.leaf(description="Does one unit of work")
async def work(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    await trio.lowlevel.checkpoint()
    return {"item": task.input}


@ov.leaf(description="Fails every time")
async def broken(task: ov.Task, ctx: ov.Context) -> None:
    raise RuntimeError("broken")


PLAN = (
    ov.Step("fan", "Do each item", to="team", for_each="input"),
    ov.Step("once", "Do it once more", to="team", after=["fan"]),
)
TREE = ov.Tree(
    "mem",
    ov.Strategic("root", plan=PLAN, children=[ov.Tactical("team", "Does work", children=[work])]),
)


def step_runs_of_plan() -> int:
    """Live (tracked) plan states of this module's static plan."""
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, StepRun) and any(o.step is step for step in PLAN)
    )


async def test_finished_goals_leave_no_runtime_state() -> None:
    """After goals end (succeeded, failed or cancelled), no GoalRun or PlanRun of the
    runner survives and the runner holds no handle."""
    failing = ov.Tree(
        "bad",
        ov.Tactical("team", "Fails", children=[broken], retry=ov.Retry(attempts=2)),
    )
    async with TREE.running() as runner, failing.running() as bad_runner:
        handles = [await runner.submit("go", input=[1, 2, 3]) for _ in range(5)]
        for handle in handles:
            assert (await handle.outcome()).ok
        failed = await bad_runner.submit("fail")
        assert not (await failed.outcome()).ok
        stuck = await runner.submit("go", input=[1])
        stuck.cancel()
        await stuck.outcome()
        assert runner.in_flight == ()
        assert bad_runner.in_flight == ()
        ours = (runner.runtime, bad_runner.runtime)
        gc.collect()
        objects = gc.get_objects()
        assert not [o for o in objects if isinstance(o, GoalRun) and o.runtime in ours]
        assert not [o for o in objects if isinstance(o, PlanRun) and o.run_state.runtime in ours]


async def test_plan_state_is_freed_without_the_cycle_collector() -> None:
    """A finished plan's steps and units hold no reference cycle, so they are freed at
    once instead of waiting for a full collection (costly with many goals in flight)."""
    async with TREE.running() as runner:
        await (await runner.submit("warm", input=[1])).outcome()
        with collector_off():
            outcome = await (await runner.submit("go", input=[1, 2, 3])).outcome()
            assert outcome.ok
            assert step_runs_of_plan() == 0


class _Crasher(ov.Agent):
    """Crashes on every task."""

    async def handle(self, task: ov.Task, ctx: ov.Context) -> None:
        raise RuntimeError("crashed")


@ov.leaf(description="Waits until cancelled")
async def hangs(task: ov.Task, ctx: ov.Context) -> None:
    await trio.sleep_forever()


@ov.leaf(description="Fails with a fatal error")
async def fatal(task: ov.Task, ctx: ov.Context) -> None:
    raise KeyError("fatal")


def _failing_tree(name: str, member: Any = broken, **team: Any) -> ov.Tree:
    """Two teams of ``member``: a goal fails after retries and a reassignment."""
    teams = [
        ov.Tactical(
            f"team{n}",
            "Does the work",
            children=[member],
            plan=[ov.Step("each", "Do each item", for_each="input")],
            retry=ov.Retry(attempts=2, fatal=(KeyError,)),
            **team,
        )
        for n in range(2)
    ]
    plan = [ov.Step("work", "Do the work", to="team0"), ov.Step("more", "More", to="team1")]
    return ov.Tree(name, ov.Strategic("root", plan=plan, children=teams))


@ov.leaf(description="Hands the task to pong")
async def ping(task: ov.Task, ctx: ov.Context) -> ov.Handoff:
    return ov.Handoff(to="pong")


@ov.leaf(description="Hands the task to ping")
async def pong(task: ov.Task, ctx: ov.Context) -> ov.Handoff:
    return ov.Handoff(to="ping")


async def _cyclic_plan(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
    return [ov.Step("a", "x", after=["b"]), ov.Step("b", "y", after=["a"])]


async def _crashing_reviewer(request: ov.ReviewRequest) -> ov.Approve:
    raise RuntimeError("the review screen crashed")


class _Scenario(NamedTuple):
    tree: ov.Tree
    status: ov.Status = ov.Status.FAILED
    timeout: float | None = None
    cancel: bool = False  # cancelled a second after it starts
    reviewer: Reviewer | None = None


def _team(name: str, **team: Any) -> ov.Tree:
    return ov.Tree(name, ov.Tactical("team", "Does the work", **team))


SCENARIOS = {
    "retried, reassigned and escalated": _Scenario(_failing_tree("retried")),
    "one_for_all": _Scenario(_failing_tree("group", strategy=ov.Strategy.ONE_FOR_ALL)),
    "an agent that crashes": _Scenario(_failing_tree("crash", _Crasher)),
    "a fatal error": _Scenario(_failing_tree("fatal", fatal)),
    "a goal timeout": _Scenario(_failing_tree("timeout", hangs), ov.Status.TIMED_OUT, 5.0),
    "a cancelled goal": _Scenario(_failing_tree("cancel", hangs), ov.Status.CANCELLED, cancel=True),
    "a hand-off loop": _Scenario(
        _team("loop", children=[ping, pong], plan=[ov.Step("s", "x", to="ping")], max_handoffs=3)
    ),
    "an invalid dynamic plan": _Scenario(_team("plan", children=[work], plan=_cyclic_plan)),
    "a reviewer that raises": _Scenario(
        _team("review", children=[work], plan=[ov.Step("s", "x", review=True)]),
        reviewer=_crashing_reviewer,
    ),
}


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_failed_goal_is_freed_without_the_cycle_collector(
    scenario: str, traced: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """A goal that fails, times out or is cancelled leaves no reference cycle behind,
    traced or not: a failure's traceback does not keep its plans or spans alive until a
    full collection."""
    tree, status, timeout, cancel, reviewer = SCENARIOS[scenario]
    options: dict[str, Any] = {"reviewer": reviewer}
    if traced:
        telemetry, _ = memory_telemetry()
        options["instrumentation"] = telemetry.instrumentation

    async def fail_once(runner: ov.Runner) -> int:
        handle = await runner.submit("go", input=[1, 2, 3], timeout=timeout)
        if cancel:
            await trio.sleep(1)
            handle.cancel()
        outcome = await handle.outcome()
        assert outcome.status is status
        return len(outcome.failures)

    async with tree.running(**options) as runner:
        await fail_once(runner)  # imports and caches filled once, outside the count
        with collector_off() as left:
            assert await fail_once(runner) > 0 or cancel or timeout
        assert left == []
