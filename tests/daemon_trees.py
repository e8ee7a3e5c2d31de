"""Small trees that the daemon tests serve in a subprocess.

Agents append one line per event to the file named by ``$OVERSTORY_TEST_RUNS``:
``"{goal_id} {step} start|end"``, and sleep ``$OVERSTORY_TEST_SLEEP`` seconds (default 0)
in between, so a test can kill the daemon while steps are in flight and count afterwards
which steps ran how often.
"""

from __future__ import annotations

import os

import trio

import overstory as ov


def _record(goal_id: str, step: str | None, what: str) -> None:
    path = os.environ.get("OVERSTORY_TEST_RUNS")
    if not path:
        return
    line = f"{goal_id} {step} {what}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write with O_APPEND: lines from many processes never mix
    finally:
        os.close(fd)


@ov.leaf
async def work(task: ov.Task, ctx: ov.Context) -> str:
    """Does one step of the pipeline, slowly."""
    _record(ctx.goal_id, task.step, "start")
    await trio.sleep(float(os.environ.get("OVERSTORY_TEST_SLEEP", "0")))
    _record(ctx.goal_id, task.step, "end")
    return f"{task.step}({task.goal})"


#: Three steps in a row, each one run of ``work``.
slow = ov.Tree(
    "slow",
    ov.Strategic(
        "pipeline",
        children=[work],
        plan=[
            ov.Step("a", "first"),
            ov.Step("b", "second", after="a"),
            ov.Step("c", "third", after="b"),
        ],
    ),
)


@ov.leaf
async def write(task: ov.Task, ctx: ov.Context) -> str:
    """Writes a draft, taking the reviewer's feedback into account."""
    _record(ctx.goal_id, task.step, "start")
    return f"draft for {ctx.goal}" + "".join(f" [{note}]" for note in ctx.feedback)


#: A draft held for review, then published.
reviewed = ov.Tree(
    "reviewed",
    ov.Tactical(
        "desk",
        children=[write],
        plan=[ov.Step("draft", "write a draft", review=True)],
    ),
)


#: A reviewed draft, then a slow step (``work``) that publishes it.
review_then_publish = ov.Tree(
    "review_then_publish",
    ov.Tactical(
        "desk",
        children=[write, work],
        plan=[
            ov.Step("draft", "write a draft", to="write", review=True),
            ov.Step("publish", "publish it", to="work", after="draft"),
        ],
    ),
)


@ov.leaf
async def echo(task: ov.Task, ctx: ov.Context) -> object:
    """Returns the goal's input."""
    return task.input


#: The smallest tree: one leaf, for the benchmark.
trivial = ov.Tree("trivial", ov.Tactical("team", children=[echo]))


@ov.leaf
async def broken(task: ov.Task, ctx: ov.Context) -> None:
    """Always fails."""
    raise RuntimeError(f"cannot do {task.goal!r}")


#: Every goal fails (after its retries).
failing = ov.Tree(
    "failing",
    ov.Tactical(
        "team", children=[broken], retry=ov.Retry(attempts=2, backoff=ov.Backoff(initial=0.01))
    ),
)


@ov.leaf
async def garble(task: ov.Task, ctx: ov.Context) -> object:
    """Makes a string that is not Unicode text (what decoding bytes with surrogateescape
    makes): returns it, or fails with it when the input is "fail"."""
    text = b"caf\xe9".decode("utf-8", "surrogateescape")
    if task.input == "fail":
        raise RuntimeError(text)
    return {"text": text}


#: Each goal's output, or its error, holds a lone surrogate.
garbled = ov.Tree("garbled", ov.Tactical("team", children=[garble], retry=ov.Retry(attempts=1)))
