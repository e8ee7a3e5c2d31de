"""Semantics 9 and 10, GUIDE scenario 9: deadlines nest; cancellation is prompt and clean."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

import overstory as ov


async def test_goal_deadline_times_out_everything_below(autojump_clock: trio.abc.Clock) -> None:
    """A goal past its deadline ends TIMED_OUT; the leaf under it is cancelled (finally runs)."""
    cleaned: list[float] = []

    @ov.leaf
    async def slow(task: ov.Task, ctx: ov.Context) -> None:
        try:
            await trio.sleep(1000)
        finally:
            cleaned.append(trio.current_time())

    outcome = await ov.Tree("t", ov.Tactical("team", children=[slow])).run("go", timeout=7.0)
    assert outcome.status is ov.Status.TIMED_OUT
    assert cleaned == [7.0]
    assert outcome.failures == ()
    assert outcome.duration == 7.0


async def test_inner_timeout_never_outlives_the_goal_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A leaf timeout longer than the goal's deadline does not extend it: TIMED_OUT at 3 s."""

    @ov.leaf(timeout=100.0)
    async def slow(task: ov.Task, ctx: ov.Context) -> None:
        await trio.sleep(1000)

    tree = ov.Tree("t", ov.Tactical("team", children=[slow], timeout=50.0))
    outcome = await tree.run("go", timeout=3.0)
    assert outcome.status is ov.Status.TIMED_OUT
    assert outcome.duration == 3.0


async def test_supervisor_timeout_is_a_failure_at_the_parent(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A team that runs past its own timeout fails that attempt; the parent reassigns."""

    @ov.leaf
    async def slow(task: ov.Task, ctx: ov.Context) -> str:
        await trio.sleep(60)
        return "slow"

    @ov.leaf
    async def quick(task: ov.Task, ctx: ov.Context) -> str:
        return "quick"

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            retry=ov.Retry(attempts=1),
            children=[
                ov.Tactical("a", "team", children=[slow], timeout=10.0),
                ov.Tactical("b", "team", children=[quick]),
            ],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.output == "quick"
    assert [(f.path, f.error_type) for f in outcome.failures] == [("t/boss/a", "AttemptTimeout")]
    assert outcome.duration == 10.0


async def test_root_timeout_is_the_goal_deadline(autojump_clock: trio.abc.Clock) -> None:
    """The root supervisor's timeout bounds each goal like a deadline (TIMED_OUT)."""

    @ov.leaf
    async def slow(task: ov.Task, ctx: ov.Context) -> None:
        await trio.sleep(60)

    tree = ov.Tree("t", ov.Tactical("team", children=[slow], timeout=5.0))
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.TIMED_OUT
    assert outcome.duration == 5.0


async def test_cancel_goal_runs_finally_blocks_and_is_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    """handle.cancel() cancels every leaf of the goal; their finally blocks run; CANCELLED."""
    cleaned: list[str] = []
    started = trio.Semaphore(0)

    @ov.leaf
    async def work(task: ov.Task, ctx: ov.Context) -> None:
        started.release()
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(str(task.step))

    tree = ov.Tree(
        "t",
        ov.Tactical("team", children=[work], plan=[ov.Step("a", "x"), ov.Step("b", "y")]),
    )
    async with tree.running() as runner:
        handle = await runner.submit("go")
        other = await runner.submit("other")
        for _ in range(4):
            await started.acquire()
        handle.cancel()
        handle.cancel()  # idempotent
        outcome = await handle.outcome()
        assert not other.done
        other.cancel()
    assert outcome.status is ov.Status.CANCELLED
    assert sorted(cleaned) == ["a", "a", "b", "b"]


async def test_cancel_during_backoff_returns_at_once(autojump_clock: trio.abc.Clock) -> None:
    """Scenario 9: cancelling while a step sleeps in a long backoff returns immediately, and
    the cancellation is not recorded as a failure."""
    failed_once = trio.Event()

    @ov.leaf
    async def crash(task: ov.Task, ctx: ov.Context) -> None:
        failed_once.set()
        raise RuntimeError("crash")

    retry = ov.Retry(attempts=5, backoff=ov.Backoff(initial=1000.0, cap=1000.0))
    tree = ov.Tree("t", ov.Tactical("team", children=[crash], retry=retry))
    async with tree.running() as runner:
        handle = await runner.submit("go")
        await failed_once.wait()
        await trio.sleep(1)
        cancelled_at = trio.current_time()
        handle.cancel()
        outcome = await handle.outcome()
    assert trio.current_time() == cancelled_at
    assert outcome.status is ov.Status.CANCELLED
    assert [f.error_type for f in outcome.failures] == ["RuntimeError"]


async def test_cancel_while_crash_looping_agent_restarts(autojump_clock: trio.abc.Clock) -> None:
    """Scenario 9: leaving running() while an agent crash-loops in restart backoff is prompt."""

    class Crash(ov.Agent):
        """Always crashes."""

        backoff = ov.Backoff(initial=500.0, cap=500.0)

        async def handle(self, task: ov.Task, ctx: ov.Context) -> Any:
            raise RuntimeError("crash")

    tree = ov.Tree("t", ov.Tactical("team", children=[Crash], retry=ov.Retry(attempts=1)))
    async with tree.running() as runner:
        await (await runner.submit("go")).outcome()
        left_at = trio.current_time()
    assert trio.current_time() == left_at


async def test_keyboard_interrupt_stops_agents_and_propagates(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Ctrl-C (KeyboardInterrupt) during tree.run cancels the goal and still stops agents."""
    log: list[str] = []

    class Stateful(ov.Agent):
        """Has a lifecycle."""

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None:
            raise KeyboardInterrupt

        async def stop(self) -> None:
            log.append("stopped")

    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        await ov.Tree("t", ov.Tactical("team", children=[Stateful])).run("go")
    assert log == ["stopped"]


def test_ctrl_c_during_run_exits_cleanly(tmp_path: Path) -> None:
    """A real SIGINT to a process inside tree.run ends it with KeyboardInterrupt handled by
    the script's own except*, after the agent's stop() ran."""
    script = tmp_path / "interrupt.py"
    script.write_text(
        textwrap.dedent(
            """
            import trio, overstory as ov

            class Slow(ov.Agent):
                async def handle(self, task, ctx):
                    print("running", flush=True)
                    await trio.sleep_forever()
                async def stop(self):
                    print("stopped", flush=True)

            tree = ov.Tree("t", ov.Tactical("team", children=[Slow]))
            try:
                trio.run(tree.run, "go")
            except* KeyboardInterrupt:
                print("interrupted", flush=True)
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "running"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert out.split() == ["stopped", "interrupted"]
    assert process.returncode == 0, err


async def test_a_stray_cancelled_from_a_leaf_fails_the_step(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A leaf re-raising a trio.Cancelled from a scope outside the goal fails its step
    with an escalation saying so; the plan never returns with that step not run."""

    @ov.leaf(description="alpha")
    async def alpha(task: ov.Task, ctx: ov.Context) -> None:
        stray: trio.Cancelled | None = None
        with trio.CancelScope() as elsewhere:
            elsewhere.cancel()
            try:
                await trio.sleep(1)
            except trio.Cancelled as caught:
                stray = caught
        assert stray is not None
        raise stray

    ran: list[str] = []

    @ov.leaf(description="beta")
    async def beta(task: ov.Task, ctx: ov.Context) -> str:
        ran.append("beta")
        return "b"

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[
                ov.Step("a", "alpha", to="team/alpha"),
                ov.Step("b", "beta", to="team/beta", after="a"),
            ],
            children=[ov.Tactical("team", "both", children=[alpha, beta])],
        ),
    )
    outcome = await tree.run("g")
    assert outcome.status is ov.Status.FAILED
    assert ran == []
    first = outcome.failures[0]
    assert (first.path, first.step, first.error_type) == ("t/boss/team", "a", "Escalation")
    assert "trio.Cancelled from a cancel scope outside the goal" in first.message
