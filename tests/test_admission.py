"""max_concurrent: goals wait for a slot in submission order; waiting goals time out,
cancel and give up their place without ever exceeding the bound."""

from __future__ import annotations

import random

import trio
import trio.testing

import overstory as ov
from overstory.hierarchy._admission import Admission, Ticket


def tracked_tree() -> tuple[ov.Tree, dict[str, float], list[int]]:
    """A tree whose leaf logs when each goal starts and the goals running at once; a
    goal's input is how long its leaf sleeps."""
    started: dict[str, float] = {}
    running = [0, 0]  # now, most at once

    @ov.leaf
    async def work(task: ov.Task, ctx: ov.Context) -> str:
        started[task.goal] = trio.current_time()
        running[0] += 1
        running[1] = max(running)
        try:
            await trio.sleep(task.input)
        finally:
            running[0] -= 1
        return task.goal

    return ov.Tree("t", ov.Tactical("team", children=[work])), started, running


async def test_waiting_goals_start_in_submission_order(autojump_clock: trio.abc.Clock) -> None:
    """Goals submitted together start in the order they were submitted, one slot at a
    time, however trio orders their tasks."""
    tree, started, running = tracked_tree()
    names = [f"goal {i}" for i in range(40)]
    async with tree.running(max_concurrent=1) as runner:
        handles = [await runner.submit(name, input=1) for name in names]
        outcomes = [await h.outcome() for h in handles]
    assert list(started) == names
    assert list(started.values()) == [float(i) for i in range(40)]
    assert [o.status for o in outcomes] == [ov.Status.SUCCEEDED] * 40
    assert running[1] == 1


async def test_a_goal_times_out_while_waiting(autojump_clock: trio.abc.Clock) -> None:
    """A waiting goal's timeout runs from submission: it ends TIMED_OUT at its deadline
    without running, and the goals behind it move up."""
    tree, started, _ = tracked_tree()
    async with tree.running(max_concurrent=1) as runner:
        first = await runner.submit("first", input=10)
        impatient = await runner.submit("impatient", input=1, timeout=3)
        last = await runner.submit("last", input=1)
        timed_out = await impatient.outcome()
        assert trio.current_time() == 3.0
        assert timed_out.status is ov.Status.TIMED_OUT
        assert (await first.outcome()).ok
        assert (await last.outcome()).ok
    assert started == {"first": 0.0, "last": 10.0}
    assert trio.current_time() == 11.0


async def test_a_waiting_goal_cancelled_gives_up_its_place(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Cancelling a waiting goal ends it CANCELLED at once, without running; its place
    passes to the next goal in line."""
    tree, started, running = tracked_tree()
    async with tree.running(max_concurrent=2) as runner:
        handles = [await runner.submit(f"g{i}", input=5) for i in range(5)]
        await trio.sleep(1)
        handles[2].cancel()
        cancelled = await handles[2].outcome()
        assert cancelled.status is ov.Status.CANCELLED
        assert trio.current_time() == 1.0
        statuses = [(await h.outcome()).status for h in handles]
    assert started == {"g0": 0.0, "g1": 0.0, "g3": 5.0, "g4": 5.0}
    assert statuses.count(ov.Status.SUCCEEDED) == 4
    assert running[1] == 2
    assert trio.current_time() == 10.0


async def test_the_bound_holds_through_timeouts_and_cancellations(
    autojump_clock: trio.abc.Clock,
) -> None:
    """With goals of random lengths, timeouts and cancellations (seeded), never more
    than max_concurrent goals run, every goal ends, and no goal starts before one
    submitted earlier that also started."""
    rng = random.Random(7)
    tree, started, running = tracked_tree()
    names = [f"g{i}" for i in range(120)]
    async with tree.running(max_concurrent=3) as runner, trio.open_nursery() as nursery:
        handles = []
        for name in names:
            timeout = rng.choice([None, None, rng.uniform(0.5, 20)])
            handles.append(await runner.submit(name, input=rng.uniform(0, 4), timeout=timeout))

        async def cancel_later(handle: ov.GoalHandle, after: float) -> None:
            await trio.sleep(after)
            handle.cancel()

        for handle in rng.sample(handles, 30):
            nursery.start_soon(cancel_later, handle, rng.uniform(0, 40))
        outcomes = [await h.outcome() for h in handles]
    assert running[1] == 3
    times = [started[n] for n in names if n in started]
    assert times == sorted(times)
    assert 60 < len(times) < 120  # some goals did wait, time out or get cancelled
    assert all(o.status is not None for o in outcomes)
    ran = {o.goal for o in outcomes if o.status is ov.Status.SUCCEEDED}
    assert ran <= set(started)


async def test_a_slot_handed_to_a_cancelled_goal_passes_on() -> None:
    """A goal cancelled after its slot was handed over, before it ran, keeps the slot
    until it releases it, which hands it to the next in line."""
    admission = Admission(1)
    holder, handed, behind = admission.ticket(), admission.ticket(), admission.ticket()
    assert holder.admitted
    assert not handed.admitted
    assert not behind.admitted
    got: list[str] = []

    async def goal(name: str, ticket: Ticket, scope: trio.CancelScope) -> None:
        with scope:
            try:
                await admission.wait(ticket)
                got.append(name)
                await trio.lowlevel.checkpoint()
                got.append(f"{name} ran")
            finally:
                admission.release(ticket)

    scopes = [trio.CancelScope(), trio.CancelScope()]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(goal, "handed", handed, scopes[0])
        nursery.start_soon(goal, "behind", behind, scopes[1])
        await trio.testing.wait_all_tasks_blocked()
        admission.release(holder)  # hands the slot to `handed`, rescheduled, not yet run
        scopes[0].cancel()
        await trio.testing.wait_all_tasks_blocked()
    assert got == ["handed", "behind", "behind ran"]
    assert admission.ticket().admitted  # the slot came back once `behind` released it
