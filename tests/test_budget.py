"""Goal budgets: usage rolls up per agent, layer and goal; exhaustion stops the goal."""

from __future__ import annotations

import pytest
import trio
from support import Calls, failing_leaf

import overstory as ov


@ov.leaf
async def spender(task: ov.Task, ctx: ov.Context) -> str:
    for _ in range(10):
        ctx.charge(input_tokens=100, output_tokens=50, cost=0.01)
        await trio.sleep(1)
    return "spent"


async def test_usage_is_rolled_up(autojump_clock: trio.abc.Clock) -> None:
    """Charges appear in the outcome per agent, per layer and in total."""
    outcome = await ov.Tree("t", ov.Tactical("team", children=[spender])).run("go")
    usage = outcome.usage
    assert usage.total.tokens == 1500
    assert usage.total.calls == 10
    assert usage.total.attempts == 1
    assert usage.by_agent["t/team/spender"].input_tokens == 1000
    assert usage.by_layer["leaf"].cost == pytest.approx(0.1)


async def test_token_budget_stops_the_goal(autojump_clock: trio.abc.Clock) -> None:
    """Past the token budget the goal is cancelled at once: BUDGET_EXHAUSTED, nothing more
    is spent, and the failure says which limit ran out."""
    outcome = await ov.Tree("t", ov.Tactical("team", children=[spender])).run(
        "go", budget=ov.Budget(tokens=400)
    )
    assert outcome.status is ov.Status.BUDGET_EXHAUSTED
    assert outcome.usage.total.calls == 3
    assert outcome.duration == 2.0
    assert "token budget exhausted: 450 > 400" in outcome.failures[0].message


async def test_attempt_budget_counts_leaf_attempts(autojump_clock: trio.abc.Clock) -> None:
    """An attempt budget stops a goal whose retries would go on."""
    calls = Calls()
    tree = ov.Tree("t", ov.Tactical("team", children=[failing_leaf("a", calls)]))
    outcome = await tree.run("go", budget=ov.Budget(attempts=2))
    assert outcome.status is ov.Status.BUDGET_EXHAUSTED
    assert calls.names() == ["a", "a"]
    assert "attempt budget exhausted: 3 > 2" in outcome.failures[-1].message


async def test_a_refused_attempt_is_not_counted(autojump_clock: trio.abc.Clock) -> None:
    """The attempt an attempt budget refuses never runs, so usage counts only the
    attempts that ran, in total and per agent."""
    calls = Calls()
    tree = ov.Tree("t", ov.Tactical("team", children=[failing_leaf("a", calls)]))
    outcome = await tree.run("go", budget=ov.Budget(attempts=2))
    assert len(calls.names()) == 2
    assert outcome.usage.total.attempts == 2
    assert outcome.usage.by_agent["t/team/a"].attempts == 2
    assert outcome.usage.by_layer["leaf"].attempts == 2


async def test_time_budget_is_a_deadline(autojump_clock: trio.abc.Clock) -> None:
    """A time budget behaves as the goal's deadline (TIMED_OUT)."""
    outcome = await ov.Tree("t", ov.Tactical("team", children=[spender])).run(
        "go", budget=ov.Budget(time=4.5)
    )
    assert outcome.status is ov.Status.TIMED_OUT
    assert outcome.duration == 4.5


async def test_exhaustion_is_not_counted_against_agents(autojump_clock: trio.abc.Clock) -> None:
    """Running out of budget trips no breaker and adds nothing to any intensity window."""
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            children=[ov.Tactical("team", children=[spender], breaker=ov.Breaker(failures=1))],
            breaker=ov.Breaker(failures=1),
        ),
    )
    async with tree.running() as runner:
        outcome = await (await runner.submit("go", budget=ov.Budget(cost=0.015))).outcome()
        health = {h.path: h for h in runner.health()}
        now = trio.current_time()
        gates = [runner.root.gate, runner.root.children["team"].gate]  # type: ignore[attr-defined]
        assert [g.recent_failures(now) for g in gates] == [0, 0]
    assert outcome.status is ov.Status.BUDGET_EXHAUSTED
    assert health["t/boss/team"].breaker == "closed"
    assert health["t/boss/team/spender"].breaker == "closed"
    assert health["t/boss/team/spender"].failed == 0
    assert [f.error_type for f in outcome.failures] == ["BudgetExhausted"]
