"""The smallest end-to-end run: one team, one leaf."""

from __future__ import annotations

import overstory as ov


async def test_one_leaf_goal_succeeds() -> None:
    """A one-step tree returns its leaf's output as the goal's output."""

    @ov.leaf
    async def echo(task: ov.Task, ctx: ov.Context) -> str:
        return task.goal.upper()

    tree = ov.Tree("t", ov.Tactical("team", children=[echo]))
    outcome = await tree.run("hello")
    assert outcome.status is ov.Status.SUCCEEDED
    assert outcome.output == "HELLO"
