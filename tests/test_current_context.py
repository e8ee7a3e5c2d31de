"""current_context(): the context of the agent whose work runs in this task, and nothing
left behind once the work ends."""

from __future__ import annotations

import trio
import trio.lowlevel

import overstory as ov
from overstory.hierarchy._context import CONTEXTS, current_context


async def test_a_leaf_and_the_tasks_it_starts_see_the_leafs_context() -> None:
    """Inside a leaf, current_context() is the context the leaf was given, in its own task
    and in a task it starts in a nursery of its own; each attempt sees its own."""
    seen: list[tuple[str, int, bool, bool]] = []

    @ov.leaf(description="Fails once, looking at its context each time")
    async def flaky(task: ov.Task, ctx: ov.Context) -> None:
        nested: list[ov.Context | None] = []

        async def helper() -> None:
            await trio.lowlevel.checkpoint()
            nested.append(current_context())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(helper)
        mine = current_context()
        assert mine is not None
        seen.append((mine.path, mine.attempt, mine is ctx, nested == [ctx]))
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "root",
            plan=[ov.Step("go", "Do it", to="team")],
            children=[ov.Tactical("team", "Does it", children=[flaky])],
        ),
    )
    async with tree.running() as runner:
        outcome = await (await runner.submit("go")).outcome()
    assert outcome.ok
    assert seen == [("t/root/team/flaky", 1, True, True), ("t/root/team/flaky", 2, True, True)]


async def test_an_agent_sees_its_context_and_the_supervisor_its_own_between() -> None:
    """An agent's handle() sees its own context; a step's plan-level code between the
    agent's attempts (a dynamic plan here) sees its supervisor's context."""
    seen: list[str | None] = []

    class Scribe(ov.Agent):
        """Writes things down"""

        async def handle(self, task: ov.Task, ctx: ov.Context) -> str:
            mine = current_context()
            seen.append(None if mine is None else mine.path)
            return "done"

    async def plan(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
        mine = current_context()
        seen.append(None if mine is None else mine.path)
        return [ov.Step("write", "Write it down", to="Scribe")]

    tree = ov.Tree("t", ov.Tactical("desk", "Writes", children=[Scribe], plan=plan))
    async with tree.running() as runner:
        outcome = await (await runner.submit("go")).outcome()
    assert outcome.ok
    assert seen == ["t/desk", "t/desk/Scribe"]


async def test_outside_a_tree_and_in_a_worker_thread_there_is_no_context() -> None:
    """current_context() is None outside any agent's work, and in a worker thread even
    when the thread was started from a leaf."""
    assert current_context() is None
    from_thread: list[ov.Context | None] = []

    @ov.leaf(description="Calls a thread")
    async def threaded(task: ov.Task, ctx: ov.Context) -> None:
        from_thread.append(await trio.to_thread.run_sync(current_context))

    async with ov.Tree("t", ov.Tactical("team", "Threads", children=[threaded])).running() as r:
        assert (await (await r.submit("go")).outcome()).ok
    assert from_thread == [None]


async def test_no_task_keeps_a_context_after_its_work_ends() -> None:
    """Once goals end (succeeded, failed after retries, or cancelled mid-attempt), no
    task is left with a context: the map holds nothing that would keep a task alive."""
    started = trio.Event()

    @ov.leaf(description="Succeeds")
    async def fine(task: ov.Task, ctx: ov.Context) -> str:
        await trio.lowlevel.checkpoint()
        return "ok"

    @ov.leaf(description="Always fails")
    async def broken(task: ov.Task, ctx: ov.Context) -> None:
        raise RuntimeError("broken")

    @ov.leaf(description="Never finishes")
    async def stuck(task: ov.Task, ctx: ov.Context) -> None:
        started.set()
        await trio.sleep_forever()

    def team(leaf: ov.FunctionLeaf) -> ov.Tree:
        return ov.Tree(leaf.name, ov.Tactical("team", "Works", children=[leaf]))

    async with (
        team(fine).running() as good,
        team(broken).running() as bad,
        team(stuck).running() as hung,
    ):
        assert (await (await good.submit("go")).outcome()).ok
        assert not (await (await bad.submit("go")).outcome()).ok
        handle = await hung.submit("go")
        await started.wait()
        assert len(CONTEXTS) == 2  # the goal's root context and the stuck attempt's
        handle.cancel()
        assert (await handle.outcome()).status is ov.Status.CANCELLED
        assert CONTEXTS == {}
