"""Trees for the daemon benchmark."""

from __future__ import annotations

import trio

import overstory as ov


@ov.leaf
async def echo(task: ov.Task, ctx: ov.Context) -> object:
    """Returns the goal's input."""
    return task.input


#: One leaf that answers at once: the daemon's own cost per goal, end to end.
trivial = ov.Tree("trivial", ov.Tactical("team", children=[echo]))


@ov.leaf
async def stuck(task: ov.Task, ctx: ov.Context) -> None:
    """Never finishes: with one slot, every later goal waits in the queue."""
    await trio.sleep_forever()


#: Accepts only: the first goal takes the only slot forever, the rest stay queued.
blocked = ov.Tree("blocked", ov.Tactical("team", children=[stuck]))


@ov.leaf(name="work", description="Does one unit of work")
async def work(task: ov.Task, ctx: ov.Context) -> dict[str, object]:
    """Yields once and returns a small dict, like W1's leaf."""
    await trio.lowlevel.checkpoint()
    return {"item": task.item, "ok": True}


#: The soak's tree: W1's shape at a small size (2 steps, each a team fanning out over
#: the goal's input list), so every layer runs for every goal.
soak = ov.Tree(
    "soak",
    ov.Strategic(
        "root",
        plan=[ov.Step(f"s{s}", f"Run step {s}", to=f"t{s}") for s in range(2)],
        children=[
            ov.Tactical(
                f"t{s}",
                f"Team {s}: calls its worker once per item",
                children=[work],
                plan=[ov.Step("call", "Call the worker for each item", for_each="input")],
            )
            for s in range(2)
        ],
    ),
)
