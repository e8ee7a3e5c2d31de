"""Parenting under concurrency: many goals at once, with fan-out, retries, hand-offs and
reassignments across teams, and every parent link checked."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import trio
import trio.testing
from telemetry_helpers import NO_WAIT, memory_telemetry

import overstory as ov

GOALS = 60


def busy_tree() -> ov.Tree:
    rng = random.Random(3)

    async def pause() -> None:
        await trio.sleep(rng.random())

    @ov.leaf(description="researches one competitor")
    async def research(task: ov.Task, ctx: ov.Context) -> str:
        await pause()
        if ctx.attempt == 1 and rng.random() < 0.3:
            raise ValueError("flaky source")
        return f"notes on {task.input}"

    @ov.leaf(description="writes mail")
    async def mail(task: ov.Task, ctx: ov.Context) -> Any:
        await pause()
        if task.handoffs == 0:
            return ov.Handoff(to="outreach/book", reason="book first", input=task.input)
        return "mail"

    @ov.leaf(description="writes mail badly")
    async def broken_mail(task: ov.Task, ctx: ov.Context) -> str:
        await pause()
        raise RuntimeError("always broken")

    @ov.leaf(description="books calls")
    async def book(task: ov.Task, ctx: ov.Context) -> str:
        await pause()
        return "booked"

    return ov.Tree(
        "agency",
        ov.Strategic(
            "director",
            plan=[
                ov.Step("research", "research competitors", to="analysts", for_each="input"),
                ov.Step("mail", "write mail", to="writers/broken_mail", after=["research"]),
            ],
            children=[
                ov.Tactical(
                    "analysts",
                    children=[research],
                    retry=ov.Retry(backoff=NO_WAIT),
                    intensity=ov.Intensity(max_failures=10**6),
                ),
                ov.Tactical(
                    "writers",
                    children=[broken_mail, mail],
                    retry=ov.Retry(attempts=1),
                    breaker=None,
                    intensity=ov.Intensity(max_failures=10**6),
                ),
                ov.Tactical("outreach", children=[book]),
            ],
        ),
    )


async def test_every_parent_link_is_right_with_many_goals_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With 60 goals running at once, each goal is exactly one trace whose spans all carry
    its goal id, and every agent span's parent is the span of the agent one level up the
    path in the same trace (the workflow span for the root)."""
    telemetry, _ = memory_telemetry()
    tree = busy_tree()
    async with tree.running(instrumentation=telemetry.instrumentation, seed=1) as runner:
        handles = [
            await runner.submit("beat the competition", input=[f"c{i}", f"d{i}", f"e{i}"])
            for i in range(GOALS)
        ]
        outcomes = [await handle.outcome() for handle in handles]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    spans = telemetry.spans()
    by_id = {s.span_id: s for s in spans}
    traces: dict[str, list[Any]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    assert len(traces) == GOALS
    goal_ids = {o.goal_id for o in outcomes}
    kinds: Counter[str] = Counter()
    for members in traces.values():
        (root,) = [s for s in members if s.parent_id is None]
        goal_id = root.attributes["gen_ai.conversation.id"]
        assert goal_id in goal_ids
        goal_ids.discard(goal_id)
        for span in members:
            assert span.attributes["gen_ai.conversation.id"] == goal_id
            if span is root:
                continue
            up = by_id[span.parent_id]
            assert up.trace_id == span.trace_id
            path = span.attributes["overstory.path"]
            if path == "agency/director":
                assert up is root
            else:
                assert up.attributes["overstory.path"] == path.rsplit("/", 1)[0], path
                assert up.attributes["gen_ai.operation.name"] == "invoke_agent"
            kinds[span.name] += 1
    assert goal_ids == set()
    # Every goal fanned out, retried, reassigned and handed off across teams.
    assert kinds["invoke_agent research"] > 3 * GOALS
    assert kinds["invoke_agent broken_mail"] >= GOALS
    assert kinds["invoke_agent mail"] >= GOALS
    assert kinds["invoke_agent book"] >= GOALS
