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
