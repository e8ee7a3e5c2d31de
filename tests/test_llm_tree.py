"""LLM leaves, router, planner and aggregator in running trees, over loopback HTTP;
budgets enforced down the tree."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing
from llm_support import http_model, script, spans  # noqa: F401 - fixtures

import overstory as ov
from overstory.testing import Fail, ScriptedModel, tool_call

BILLING = "Billing: invoices, refunds, double charges and payment methods."
TECHNICAL = "Technical support: error messages, crashes, login problems and outages."
ACCOUNT = "Account changes: e-mail address, password, closing an account."


@attrs.frozen
class Reply:
    answer: str


def specialists(model: ov.Model, **options: object) -> list[ov.FunctionLeaf]:
    return [
        ov.llm_leaf("billing", model=model, description=BILLING, output=Reply, **options),  # type: ignore[arg-type]
        ov.llm_leaf("technical", model=model, description=TECHNICAL, output=Reply, **options),  # type: ignore[arg-type]
        ov.llm_leaf("account", model=model, description=ACCOUNT, output=Reply, **options),  # type: ignore[arg-type]
    ]


def desk(model: ov.Model, **options: object) -> ov.Tree:
    return ov.Tree(
        "support",
        ov.Tactical(
            "desk",
            router=ov.LLMRouter(model),
            retry=ov.Retry(attempts=1),
            children=specialists(model, **options),
        ),
    )


def agents(script: ScriptedModel, purpose: str = "answer") -> list[str]:
    return [c.agent for c in script.calls if c.purpose == purpose]


async def test_router_sends_work_to_the_specialist_it_ranks_first(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """The LLM router sees every child's name, description and skills; its first choice does
    the work; usage rolls up per agent and per layer (the router's under the supervisor)."""
    script.on(purpose="route", reply={"ranking": ["billing", "account"]}, usage=(100, 10))
    script.on(agent="billing", reply={"answer": "Refund issued."}, usage=(200, 20))
    outcome = await desk(http_model).run("I was charged twice for my plan")
    assert outcome.status is ov.Status.SUCCEEDED
    assert outcome.output == Reply("Refund issued.")
    (route,) = [c for c in script.calls if c.purpose == "route"]
    assert route.agent == "support/desk"
    for name, description in (("billing", BILLING), ("technical", TECHNICAL)):
        assert f"- {name}: {description}" in route.prompt
    assert route.schema is not None
    assert route.schema["properties"]["ranking"]["items"]["enum"] == [
        "billing",
        "technical",
        "account",
    ]
    assert agents(script) == ["support/desk/billing"]
    usage = outcome.usage
    assert usage.by_agent["support/desk"].tokens == 110
    assert usage.by_agent["support/desk/billing"].input_tokens == 200
    assert usage.by_layer["tactical"].calls == 1
    assert usage.by_layer["leaf"].tokens == 220
    assert usage.total.tokens == 330
    assert usage.total.calls == 2


async def test_the_ranking_feeds_reassignment(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """When the first-ranked specialist fails (invalid JSON, repairs exhausted), the step is
    reassigned to the next in the model's ranking, never to an unranked child."""
    script.on(purpose="route", reply={"ranking": ["technical", "billing"]})
    script.on(agent="technical", reply="I think it is a billing thing?")
    script.on(agent="billing", reply={"answer": "Refund issued."})
    events: list[ov.SupervisionEvent] = []
    outcome = await desk(http_model, repairs=1).run(
        "Refund my duplicate payment", on_event=events.append
    )
    assert outcome.output == Reply("Refund issued.")
    assert agents(script) == ["support/desk/technical"] * 2 + ["support/desk/billing"]
    (reassign,) = [e for e in events if e.kind is ov.EventKind.REASSIGN]
    assert reassign.agent == "support/desk/technical"
    assert reassign.next_agent == "support/desk/billing"
    assert reassign.error_type == "InvalidOutput"


async def test_invalid_json_from_a_leaf_is_repaired_over_http(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """A leaf's invalid JSON answer is sent back and repaired in the same attempt."""
    script.on(purpose="route", reply={"ranking": ["account"]})
    script.on(agent="account", reply="{'answer': 'done'", times=1)
    script.on(agent="account", reply={"answer": "E-mail changed."})
    outcome = await desk(http_model).run("Change my e-mail address")
    assert outcome.output == Reply("E-mail changed.")
    assert outcome.failures == ()
    assert len(agents(script)) == 2


@pytest.mark.parametrize(
    "answer",
    [{"ranking": ["refunds"]}, {"ranking": []}, "billing, obviously", Fail(503)],
    ids=["unknown-name", "empty", "not-json", "provider-error"],
)
async def test_router_falls_back_to_lexical_routing(
    script: ScriptedModel, http_model: ov.OpenAIModel, answer: object
) -> None:
    """A ranking naming an unknown agent or nobody, an answer that is not JSON, or a failing
    provider: the lexical router ranks instead, by description."""
    script.on(purpose="route", reply=answer)
    script.on(agent="billing", reply={"answer": "Refund issued."})
    outcome = await desk(http_model).run("Refund the double charge on my invoice")
    assert outcome.output == Reply("Refund issued.")
    assert agents(script) == ["support/desk/billing"]


async def test_router_does_not_ask_about_a_single_candidate(script: ScriptedModel) -> None:
    """With one candidate there is nothing to rank: no model call."""
    script.on(agent="billing", reply={"answer": "ok"})
    tree = ov.Tree(
        "t", ov.Tactical("desk", router=ov.LLMRouter(script), children=specialists(script)[:1])
    )
    assert (await tree.run("anything")).ok
    assert agents(script, "route") == []


async def test_leaf_prompt_carries_input_dependencies_and_the_goal(
    script: ScriptedModel,
) -> None:
    """An LLM leaf's user message states its step, the goal, the input and the outputs of
    the steps it runs after."""
    script.on(agent="billing", reply={"answer": "Invoice 7: 40 EUR"})
    script.on(agent="account", reply={"answer": "Closed."})
    tree = ov.Tree(
        "t",
        ov.Tactical(
            "desk",
            plan=[
                ov.Step("invoice", "Find the last invoice", to="billing"),
                ov.Step("close", "Close the account", to="account", after="invoice"),
            ],
            children=specialists(script),
        ),
    )
    outcome = await tree.run("Close my account after paying", input={"customer": "c-9"})
    assert outcome.ok
    (close,) = [c for c in script.calls if c.agent == "t/desk/account"]
    prompt = close.prompt
    assert "Task: Close the account" in prompt
    assert "Overall goal: Close my account after paying" in prompt
    assert 'Input: {"customer": "c-9"}' in prompt
    assert '- invoice: {"answer": "Invoice 7: 40 EUR"}' in prompt


def test_llm_leaf_checks_its_definition() -> None:
    """An LLM leaf needs a description (routing reads it) and describable tools; a model
    name means an OpenAI-compatible model configured from the environment."""
    with pytest.raises(ValueError, match="description"):
        ov.llm_leaf("x", model="m", description=" ")

    def untyped(x):  # type: ignore[no-untyped-def]
        """No annotation."""

    with pytest.raises(TypeError, match="annotation"):
        ov.llm_leaf("x", model="m", description="d", tools=[untyped])
    with pytest.raises(ValueError, match="repairs"):
        ov.llm_leaf("x", model="m", description="d", repairs=-1)
    leaf = ov.llm_leaf("x", model="gpt-4o-mini", description="d", skills="billing")
    assert isinstance(leaf.fn.model, ov.OpenAIModel)  # type: ignore[attr-defined]
    assert leaf.skills == frozenset({"billing"})


# -- planning and synthesis ---------------------------------------------------------------


def director(model: ov.Model, *, replans: int = 0, repairs: int = 2, max_steps: int = 8) -> ov.Tree:
    billing, technical, _ = specialists(model)
    return ov.Tree(
        "support",
        ov.Strategic(
            "director",
            plan=ov.LLMPlanner(model, repairs=repairs, max_steps=max_steps),
            aggregate=ov.LLMAggregator(model, instructions="Write to the customer."),
            replans=replans,
            children=[
                ov.Tactical("money", "Everything about payments and invoices.", children=[billing]),
                ov.Tactical(
                    "tech", "Everything about the product not working.", children=[technical]
                ),
            ],
        ),
    )


def step(
    name: str, goal: str, team: str | None, after: list[str] | None = None
) -> dict[str, object]:
    return {"name": name, "goal": goal, "team": team, "after": after or []}


async def test_planner_and_aggregator_run_a_goal_end_to_end(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """The planner turns the goal into a DAG over the teams; dependent steps see their
    inputs; the aggregator writes the final answer from every step's output."""
    script.on(
        purpose="plan",
        reply={
            "steps": [
                step("refund", "Refund the double charge", "money"),
                step("login", "Explain the login error", "tech"),
                step("confirm", "Confirm the refund amount", "money", ["refund"]),
            ]
        },
    )
    script.on(agent="billing", prompt="Confirm", reply={"answer": "Confirmed: 40 EUR."})
    script.on(agent="billing", reply={"answer": "Refunded 40 EUR."})
    script.on(agent="technical", reply={"answer": "Clear your cookies."})
    script.on(purpose="aggregate", reply="Dear customer, refunded 40 EUR; clear your cookies.")
    outcome = await director(http_model).run("Double charge and I cannot log in")
    assert outcome.status is ov.Status.SUCCEEDED
    assert outcome.output == "Dear customer, refunded 40 EUR; clear your cookies."
    (plan,) = [c for c in script.calls if c.purpose == "plan"]
    assert plan.agent == "support/director"
    assert "- money: Everything about payments and invoices." in plan.prompt
    confirm = next(c for c in script.calls if "Confirm" in c.prompt and c.purpose == "answer")
    assert '- refund: {"answer": "Refunded 40 EUR."}' in confirm.prompt
    (aggregate,) = [c for c in script.calls if c.purpose == "aggregate"]
    assert aggregate.messages[0].content is not None
    assert "Write to the customer." in aggregate.messages[0].content
    for name in ("refund", "login", "confirm"):
        assert f"- {name}: " in aggregate.prompt
    assert outcome.usage.by_layer["strategic"].calls == 2


async def test_invalid_plans_are_repaired(script: ScriptedModel) -> None:
    """A plan naming an unknown team, then one with a cycle, are sent back with the problem;
    the third, valid plan runs."""
    script.on(purpose="plan", times=1, reply={"steps": [step("a", "Sell more", "sales")]})
    script.on(
        purpose="plan",
        times=1,
        reply={"steps": [step("a", "A", "money", ["b"]), step("b", "B", "tech", ["a"])]},
    )
    script.on(purpose="plan", reply={"steps": [step("a", "Refund", "money")]})
    script.on(agent="billing", reply={"answer": "ok"})
    script.on(purpose="aggregate", reply="done")
    outcome = await director(script).run("Refund me")
    assert outcome.ok
    plans = [c for c in script.calls if c.purpose == "plan"]
    assert len(plans) == 3
    assert "'sales', which is not a child" in (plans[1].messages[-1].content or "")
    assert "cycle" in (plans[2].messages[-1].content or "")


async def test_plan_size_is_bounded(script: ScriptedModel) -> None:
    """A plan with more than max_steps steps is rejected and repaired."""
    script.on(
        purpose="plan",
        times=1,
        reply={"steps": [step(f"s{i}", "Refund", "money") for i in range(3)]},
    )
    script.on(purpose="plan", reply={"steps": [step("s", "Refund", "money")]})
    script.on(agent="billing", reply={"answer": "ok"})
    script.on(purpose="aggregate", reply="done")
    assert (await director(script, max_steps=2).run("Refund me")).ok
    plans = [c for c in script.calls if c.purpose == "plan"]
    assert "at most 2 allowed" in (plans[1].messages[-1].content or "")
    assert plans[0].schema is not None
    assert plans[0].schema["properties"]["steps"]["maxItems"] == 2


async def test_a_plan_that_stays_invalid_fails_the_goal(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """After the repair rounds, PlanError fails the goal; no step runs."""
    script.on(purpose="plan", reply={"steps": [step("a", "Sell", "sales")]})
    outcome = await director(http_model, repairs=1).run("Refund me")
    assert outcome.status is ov.Status.FAILED
    assert outcome.failures[-1].error_type == "PlanError"
    assert "no valid plan" in outcome.failures[-1].message
    assert len(script.calls) == 2
    assert agents(script) == []


async def test_replanning_after_an_escalation(
    script: ScriptedModel, autojump_clock: trio.testing.MockClock
) -> None:
    """A step that escalates (every team failed it) makes the strategic supervisor plan
    again (replans=1), telling the planner what failed; the new plan succeeds."""
    script.on(purpose="plan", times=1, reply={"steps": [step("fix", "Refund by wire", "tech")]})
    script.on(purpose="plan", reply={"steps": [step("refund", "Refund the card", "money")]})
    script.on(purpose="answer", prompt="wire", reply="not JSON")
    script.on(agent="billing", reply={"answer": "Refunded."})
    script.on(purpose="aggregate", reply="Refunded.")
    events: list[ov.SupervisionEvent] = []
    outcome = await director(script, replans=1).run("Fix it", on_event=events.append)
    assert outcome.status is ov.Status.SUCCEEDED, outcome.error
    plans = [c for c in script.calls if c.purpose == "plan"]
    assert len(plans) == 2
    assert "Earlier attempts failed" in plans[1].prompt
    assert "step 'fix' failed" in plans[1].prompt
    (replan,) = [e for e in events if e.kind is ov.EventKind.REPLAN]
    assert replan.path == "support/director"
    assert replan.step == "fix"


async def test_replanning_is_bounded(
    script: ScriptedModel, autojump_clock: trio.testing.MockClock
) -> None:
    """With replans=2 and a step that always fails, the goal is planned exactly 3 times,
    then the escalation ends it."""
    script.on(purpose="plan", reply={"steps": [step("fix", "Fix it", "tech")]})
    script.on(agent="technical", reply="not json")
    script.on(agent="billing", reply="not json either")
    outcome = await director(script, replans=2, repairs=0).run("Fix it")
    assert outcome.status is ov.Status.FAILED
    assert len([c for c in script.calls if c.purpose == "plan"]) == 3


def test_replans_need_a_plan_function() -> None:
    """replans without a plan function, or negative, is refused when the spec is built."""

    @ov.leaf
    async def worker(task: ov.Task, ctx: ov.Context) -> None:
        """Works."""

    with pytest.raises(ValueError, match="plan function"):
        ov.Strategic("s", plan=[ov.Step("a", "A")], replans=1, children=[worker])
    with pytest.raises(ValueError, match="replans"):
        ov.Strategic("s", replans=-1, children=[worker])


async def test_planner_outside_a_supervisor_says_so(script: ScriptedModel) -> None:
    """Called without the supervisor's children, the planner raises PlanError at once."""
    ctx = ov.Context(
        task=ov.Task(goal="g", goal_id="1"),
        goal="g",
        goal_id="1",
        path="p",
        attempt=1,
        outputs={},
        memory=ov.Memory(),
    )
    with pytest.raises(ov.PlanError, match="children"):
        await ov.LLMPlanner(script)(ctx.task, ctx)
    assert script.calls == []


async def test_aggregator_can_stream_its_answer(script: ScriptedModel) -> None:
    """on_text receives the final answer as it is written."""
    script.on(purpose="plan", reply={"steps": [step("refund", "Refund", "money")]})
    script.on(agent="billing", reply={"answer": "ok"})
    script.on(purpose="aggregate", reply="All done.")
    pieces: list[str] = []
    billing = specialists(script)[0]
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "director",
            plan=ov.LLMPlanner(script),
            aggregate=ov.LLMAggregator(script, on_text=pieces.append),
            children=[ov.Tactical("money", children=[billing])],
        ),
    )
    assert (await tree.run("Refund")).output == "All done."
    assert "".join(pieces) == "All done."


# -- provider failures in a tree ------------------------------------------------------------


async def test_provider_errors_are_retried_by_the_supervisor(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """429s that outlast the client's own retries fail the attempt with ProviderError; the
    supervisor's retry policy then tries again and succeeds."""
    script.on(agent="billing", reply=Fail(429, retry_after=0.01), times=3)
    script.on(agent="billing", reply={"answer": "ok"})
    billing = specialists(http_model)[0]
    tree = ov.Tree(
        "t",
        ov.Tactical(
            "desk",
            retry=ov.Retry(attempts=2, backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0)),
            children=[billing],
        ),
    )
    outcome = await tree.run("refund")
    assert outcome.ok
    assert [f.error_type for f in outcome.failures] == ["ProviderError"]
    assert len(script.calls) == 4


async def test_authentication_failure_fails_the_goal_without_retry(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """401 is fatal: no client retry, no supervisor retry, no reassignment."""
    script.on(purpose="route", reply={"ranking": ["billing", "account"]})
    script.on(reply=Fail(401, message="invalid api key"))
    tree = ov.Tree(
        "t",
        ov.Tactical(
            "desk",
            router=ov.LLMRouter(http_model),
            retry=ov.Retry(attempts=3),
            children=specialists(http_model),
        ),
    )
    outcome = await tree.run("refund")
    assert outcome.status is ov.Status.FAILED
    assert outcome.failures[0].error_type == "AuthenticationFailed"
    assert "invalid api key" in outcome.failures[0].message
    assert agents(script) == ["t/desk/billing"]


# -- budgets ----------------------------------------------------------------------------------


async def test_token_budget_stops_the_goal_and_cancels_calls_in_flight(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """One call takes the goal past its token budget: the goal ends BUDGET_EXHAUSTED at
    once, the sibling's HTTP call in flight is cancelled (never charged), nothing else is
    called."""
    script.on(agent="billing", reply={"answer": "ok"}, usage=(600, 100))
    script.on(agent="technical", reply={"answer": "slow"}, usage=(1, 1), delay=5.0)
    tree = ov.Tree(
        "support",
        ov.Tactical(
            "desk",
            plan=[
                ov.Step("slow", "Diagnose the crash", to="technical"),
                ov.Step("fast", "Refund", to="billing"),
            ],
            children=specialists(http_model),
        ),
    )
    start = trio.current_time()
    with trio.fail_after(4):
        outcome = await tree.run("help", budget=ov.Budget(tokens=500))
    assert trio.current_time() - start < 2.0
    assert outcome.status is ov.Status.BUDGET_EXHAUSTED
    assert outcome.usage.total.tokens == 700
    assert "support/desk/technical" not in outcome.usage.by_agent or (
        outcome.usage.by_agent["support/desk/technical"].tokens == 0
    )
    assert sorted(agents(script)) == ["support/desk/billing", "support/desk/technical"]
    assert any(f.error_type == "BudgetExhausted" for f in outcome.failures)


async def test_cost_budget_stops_a_tool_loop(script: ScriptedModel) -> None:
    """Cost comes from the model's price per million tokens; the call that goes past the
    cost budget is the last one made."""
    priced = ScriptedModel("priced", price=ov.Price(input=1000.0, output=1000.0))

    def ping() -> str:
        """Ping."""
        return "pong"

    priced.on(reply=tool_call("ping"), usage=(20, 5))  # 0.025 per call
    worker = ov.llm_leaf("worker", model=priced, description="Pings.", tools=[ping])
    tree = ov.Tree("t", ov.Tactical("team", children=[worker]))
    outcome = await tree.run("ping forever", budget=ov.Budget(cost=0.05))
    assert outcome.status is ov.Status.BUDGET_EXHAUSTED
    assert len(priced.calls) == 3
    assert outcome.usage.total.cost == pytest.approx(0.075)
    assert outcome.usage.by_agent["t/team/worker"].calls == 3


async def test_exhausted_budget_refuses_further_calls(script: ScriptedModel) -> None:
    """Once a goal's budget is spent, a model call asked for later is refused before it is
    made, even by code that swallowed the first BudgetExhausted."""
    script.on(reply="ok", usage=(10, 10))
    refused: list[str] = []

    @ov.leaf
    async def greedy(task: ov.Task, ctx: ov.Context) -> str:
        """Asks twice, whatever happens."""
        for prompt in ("one", "two"):
            try:
                await ov.ask(script, prompt)
            except ov.BudgetExhausted as exc:
                refused.append(str(exc))
        return "done"

    outcome = await ov.Tree("t", ov.Tactical("team", children=[greedy])).run(
        "go", budget=ov.Budget(tokens=15)
    )
    assert outcome.status is ov.Status.BUDGET_EXHAUSTED
    assert len(script.calls) == 1
    assert refused == ["t/team/greedy: token budget exhausted: 20 > 15"] * 2


async def test_budget_spent_by_the_router_stops_the_goal_before_any_leaf(
    script: ScriptedModel,
) -> None:
    """Routing calls count too: a router call that spends the budget ends the goal
    BUDGET_EXHAUSTED before any specialist is asked."""
    script.on(purpose="route", reply={"ranking": ["billing"]}, usage=(100, 10))
    outcome = await desk(script).run("refund", budget=ov.Budget(tokens=50))
    assert outcome.status is ov.Status.BUDGET_EXHAUSTED
    assert agents(script) == []
    assert outcome.usage.by_agent["support/desk"].tokens == 110
    # Running out of budget while routing is not a routing fault: it is passed up as is.
    assert [f.error_type for f in outcome.failures] == ["BudgetExhausted"]
    assert outcome.failures[0].message.startswith("support/desk: token budget exhausted")
