"""Semantic 14: a leaf may hand its job to a peer; loops are cut by a bound."""

from __future__ import annotations

from typing import Any

import trio
from support import events_of

import overstory as ov


@ov.leaf(description="answers billing questions")
async def billing(task: ov.Task, ctx: ov.Context) -> Any:
    return {"billing": task.input}


@ov.leaf(description="front desk")
async def desk(task: ov.Task, ctx: ov.Context) -> Any:
    return ov.Handoff(to="billing", input={"q": task.goal}, reason="a billing question")


async def test_handoff_to_a_peer(autojump_clock: trio.abc.Clock) -> None:
    """A leaf returning Handoff(to=peer) gets the peer's output as the step's output."""
    events: list[ov.SupervisionEvent] = []
    tree = ov.Tree(
        "t", ov.Tactical("team", children=[desk, billing], plan=[ov.Step("s", "q", to="desk")])
    )
    outcome = await tree.run("refund?", on_event=events.append)
    assert outcome.output == {"billing": {"q": "q"}}
    (handoff,) = events_of(events, ov.EventKind.HANDOFF)
    assert (handoff.agent, handoff.next_agent) == ("t/team/desk", "t/team/billing")
    assert handoff.message == "a billing question"


async def test_handoff_routed_by_goal_text(autojump_clock: trio.abc.Clock) -> None:
    """A hand-off without to= is routed by its goal among the other children."""

    @ov.leaf(description="front desk")
    async def vague(task: ov.Task, ctx: ov.Context) -> Any:
        return ov.Handoff(goal="a billing question about an invoice")

    tree = ov.Tree(
        "t", ov.Tactical("team", children=[vague, billing], plan=[ov.Step("s", "q", to="vague")])
    )
    outcome = await tree.run("go", input="in")
    assert outcome.output == {"billing": "in"}


async def test_handoff_nobody_fits_fails_clearly(autojump_clock: trio.abc.Clock) -> None:
    """A hand-off whose target is a child at no level on its way up fails the goal with
    NoCandidate naming the sender and the target."""
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("s", "anything", to="front")],
            children=[
                ov.Tactical("front", children=[desk]),
                ov.Tactical("money", children=[billing]),
            ],
        ),
    )
    outcome = await tree.run("go")
    # "billing" is a leaf of another team, not a child of front or of boss.
    assert outcome.status is ov.Status.FAILED
    assert outcome.failures[-1].error_type == "NoCandidate"
    assert "from t/boss/front/desk to 'billing'" in outcome.failures[-1].message


async def test_handoff_to_a_sibling_team(autojump_clock: trio.abc.Clock) -> None:
    """A leaf hands off to="money" (a sibling team): its team passes it up, the strategic
    supervisor routes it to the money team, and the result is the step's output."""

    @ov.leaf
    async def front_desk(task: ov.Task, ctx: ov.Context) -> Any:
        return ov.Handoff(to="money", goal="settle the invoice")

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("s", "help the customer", to="front")],
            children=[
                ov.Tactical("front", children=[front_desk]),
                ov.Tactical("money", children=[billing]),
            ],
        ),
    )
    outcome = await tree.run("go", input=7)
    assert outcome.output == {"billing": 7}


async def test_handoff_loop_is_cut(autojump_clock: trio.abc.Clock) -> None:
    """Two leaves handing off to each other stop at max_handoffs with HandoffLoop."""
    hops: list[str] = []

    @ov.leaf
    async def ping(task: ov.Task, ctx: ov.Context) -> Any:
        hops.append("ping")
        return ov.Handoff(to="pong")

    @ov.leaf
    async def pong(task: ov.Task, ctx: ov.Context) -> Any:
        hops.append("pong")
        return ov.Handoff(to="ping")

    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team", children=[ping, pong], plan=[ov.Step("s", "x", to="ping")], max_handoffs=3
        ),
    )
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert "HandoffLoop" in [f.error_type for f in outcome.failures]
    assert "more than 3 hand-offs" in (outcome.error or "") or any(
        "more than 3 hand-offs" in f.message for f in outcome.failures
    )
    assert len(hops) == 4


async def test_handoff_loop_across_teams_is_cut(autojump_clock: trio.abc.Clock) -> None:
    """Hand-offs bouncing between two teams through their parent are counted across levels."""
    hops: list[str] = []

    @ov.leaf
    async def a(task: ov.Task, ctx: ov.Context) -> Any:
        hops.append("a")
        return ov.Handoff(to="right")

    @ov.leaf
    async def b(task: ov.Task, ctx: ov.Context) -> Any:
        hops.append("b")
        return ov.Handoff(to="left")

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("s", "x", to="left")],
            children=[ov.Tactical("left", children=[a]), ov.Tactical("right", children=[b])],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert len(hops) == 9  # the first run plus the default bound of 8 hand-offs


def bouncing_team(hops: int, *, fail_at_end: bool) -> ov.Tree:
    """Two leaves handing a counter back and forth ``hops`` times; the last one answers
    (or raises, with ``fail_at_end``)."""

    async def bounce(task: ov.Task, ctx: ov.Context, other: str) -> Any:
        if task.input == hops:
            if fail_at_end:
                raise ov.Fatal("the end of the chain failed")
            return task.input
        return ov.Handoff(to=other, input=task.input + 1)

    @ov.leaf
    async def ping(task: ov.Task, ctx: ov.Context) -> Any:
        return await bounce(task, ctx, "pong")

    @ov.leaf
    async def pong(task: ov.Task, ctx: ov.Context) -> Any:
        return await bounce(task, ctx, "ping")

    return ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[ping, pong],
            plan=[ov.Step("s", "x", to="ping")],
            max_handoffs=hops + 1,
        ),
    )


async def test_a_long_handoff_chain_runs_in_constant_depth() -> None:
    """A chain of 3,000 hand-offs (max_handoffs raised) completes: hops are followed in
    a loop, not one nested call per hop (which hit Python's recursion limit near 300)."""
    outcome = await bouncing_team(3000, fail_at_end=False).run("go", input=0)
    assert outcome.ok, outcome.error
    assert outcome.output == 3000


async def test_a_failure_at_the_end_of_a_chain_is_recorded_once() -> None:
    """The target at the end of a 40-hop chain fails: the chain records that failure
    and one hand-off escalation whose message quotes it once (not once per hop)."""
    outcome = await bouncing_team(40, fail_at_end=True).run("go", input=0)
    assert outcome.status is ov.Status.FAILED
    assert [f.error_type for f in outcome.failures] == ["Fatal", "Escalation", "Escalation"]
    handoff = outcome.failures[-1]
    assert handoff.message == (
        "t/team: hand-off failed: t/team: fatal failure in t/team/ping: the end of the chain failed"
    )
