"""Spans of one goal, through the in-memory exporter: names, attributes, layers, links,
events and parents for success, retry, reassignment, escalation, timeout, cancellation,
hand-off, fan-out, planning, restarts and breakers."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from opentelemetry import trace as trace_api
from telemetry_helpers import NO_WAIT, events, memory_telemetry, named, one, parent

import overstory as ov
from overstory.telemetry import SpanRecord


async def run(
    tree: ov.Tree, telemetry: ov.telemetry.Telemetry, goal: str = "qualify ACME", **submit: Any
) -> tuple[ov.Outcome, list[SpanRecord]]:
    async with tree.running(instrumentation=telemetry.instrumentation, seed=7) as runner:
        handle = await runner.submit(goal, **submit)
        outcome = await handle.outcome()
    return outcome, telemetry.spans()


def agency(*leaves: ov.FunctionLeaf, **team: Any) -> ov.Tree:
    """agency → director (strategic) → sales (tactical) → the leaves."""
    return ov.Tree(
        "agency",
        ov.Strategic(
            "director",
            description="Runs the agency",
            children=[ov.Tactical("sales", description="The sales team", children=leaves, **team)],
        ),
    )


@ov.leaf(description="Looks leads up in the CRM")
async def crm(task: ov.Task, ctx: ov.Context) -> str:
    return "lead"


async def test_success_names_attributes_layers_and_parents(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A successful goal is one trace: workflow → strategic → tactical → leaf, each in its
    layer's service, with the GenAI and overstory attributes."""
    telemetry, _ = memory_telemetry()
    outcome, spans = await run(agency(crm), telemetry)
    assert outcome.ok
    assert len({s.trace_id for s in spans}) == 1
    workflow = one(spans, "invoke_workflow agency")
    director = one(spans, "invoke_agent director")
    sales = one(spans, "invoke_agent sales")
    leaf = one(spans, "invoke_agent crm")
    assert workflow.parent_id is None
    assert parent(spans, director) == workflow
    assert parent(spans, sales) == director
    assert parent(spans, leaf) == sales
    assert [s.service for s in (workflow, director, sales, leaf)] == [
        "agency.strategic",
        "agency.strategic",
        "agency.tactical",
        "agency.leaf",
    ]
    assert {s.resource["service.namespace"] for s in spans} == {"agency"}
    assert workflow.attributes == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "agency",
        "gen_ai.conversation.id": outcome.goal_id,
        "overstory.layer": "strategic",
        "overstory.tree": "agency",
        "overstory.goal": "qualify ACME",
        "overstory.goal.status": "succeeded",
    }
    assert director.attributes == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "director",
        "gen_ai.agent.id": "agency/director",
        "gen_ai.agent.description": "Runs the agency",
        "gen_ai.conversation.id": outcome.goal_id,
        "overstory.layer": "strategic",
        "overstory.path": "agency/director",
        "overstory.attempt": 1,
        "overstory.strategy": "one_for_one",
    }
    assert sales.attributes["overstory.strategy"] == "one_for_one"
    assert sales.attributes["overstory.step"] == "director"
    assert leaf.attributes["gen_ai.agent.description"] == "Looks leads up in the CRM"
    assert leaf.attributes["overstory.layer"] == "leaf"
    assert leaf.attributes["overstory.path"] == "agency/director/sales/crm"
    assert all(s.status == "UNSET" for s in spans)


async def test_retry_links_attempts_and_puts_the_event_on_the_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A retried leaf has one span per attempt, the second linked to the first; the failed
    one is ERROR with its exception, and the retry is an event on the tactical span."""
    telemetry, _ = memory_telemetry()

    @ov.leaf
    async def flaky(task: ov.Task, ctx: ov.Context) -> str:
        if ctx.attempt == 1:
            raise ValueError("crm down")
        return "ok"

    outcome, spans = await run(agency(flaky, retry=ov.Retry(backoff=NO_WAIT)), telemetry)
    assert outcome.ok
    first, second = named(spans, "invoke_agent flaky")
    assert [first.attributes["overstory.attempt"], second.attributes["overstory.attempt"]] == [1, 2]
    assert first.status == "ERROR"
    assert first.status_message == "ValueError: crm down"
    assert first.attributes["error.type"] == "ValueError"
    assert [e["exception.type"] for e in events(first, "exception")] == ["ValueError"]
    assert second.status == "UNSET"
    assert [(link["span_id"], link["attributes"]) for link in second.links] == [
        (first.span_id, {"overstory.link": "previous_attempt"})
    ]
    sales = one(spans, "invoke_agent sales")
    assert parent(spans, first) == parent(spans, second) == sales
    assert events(sales, "retry") == [
        {
            "overstory.path": "agency/director/sales",
            "gen_ai.conversation.id": outcome.goal_id,
            "overstory.step": "director",
            "overstory.attempt": 1,
            "overstory.agent": "agency/director/sales/flaky",
            "overstory.backoff": 0.01,
            "error.type": "ValueError",
            "overstory.message": "crm down",
        }
    ]
    assert sales.status == "UNSET"


async def test_reassignment_event_names_both_agents(autojump_clock: trio.testing.MockClock) -> None:
    """When a leaf fails for good the step moves to the next child: a reassign event on
    the tactical span names both, and the second child's attempt is its sibling."""
    telemetry, _ = memory_telemetry()

    @ov.leaf(description="lead crm")
    async def broken(task: ov.Task, ctx: ov.Context) -> str:
        raise RuntimeError("gone")

    @ov.leaf(description="lead crm backup")
    async def backup(task: ov.Task, ctx: ov.Context) -> str:
        return "ok"

    tree = agency(broken, backup, retry=ov.Retry(attempts=1))
    outcome, spans = await run(tree, telemetry, "lead crm")
    assert outcome.ok
    sales = one(spans, "invoke_agent sales")
    (reassign,) = events(sales, "reassign")
    assert reassign["overstory.agent"] == "agency/director/sales/broken"
    assert reassign["overstory.next_agent"] == "agency/director/sales/backup"
    assert reassign["error.type"] == "RuntimeError"
    assert parent(spans, one(spans, "invoke_agent backup")) == sales
    assert one(spans, "invoke_agent broken").attributes["error.type"] == "RuntimeError"


async def test_escalation_is_an_event_and_fails_every_span_up_to_the_goal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A team that gives up escalates: an escalate event on its span, error.type and status
    ERROR on the team, the director and the goal, whose status attribute is failed."""
    telemetry, _ = memory_telemetry()

    @ov.leaf
    async def doomed(task: ov.Task, ctx: ov.Context) -> str:
        raise ValueError("no")

    tree = agency(doomed, retry=ov.Retry(attempts=2, backoff=NO_WAIT))
    outcome, spans = await run(tree, telemetry)
    assert outcome.status is ov.Status.FAILED
    sales = one(spans, "invoke_agent sales")
    (escalate,) = events(sales, "escalate")
    assert escalate["error.type"] == "CandidatesExhausted"
    assert escalate["overstory.attempt"] == 2
    assert sales.attributes["error.type"] == "CandidatesExhausted"
    director = one(spans, "invoke_agent director")
    workflow = one(spans, "invoke_workflow agency")
    assert [s.status for s in (sales, director, workflow)] == ["ERROR"] * 3
    assert events(director, "escalate")[0]["error.type"] == "CandidatesExhausted"
    assert workflow.attributes["overstory.goal.status"] == "failed"


async def test_attempt_timeout_is_a_failure_of_that_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An attempt that runs past its timeout ends ERROR with error.type AttemptTimeout."""
    telemetry, _ = memory_telemetry()

    @ov.leaf(timeout=1.0)
    async def slow(task: ov.Task, ctx: ov.Context) -> str:
        if ctx.attempt == 1:
            await trio.sleep(5)
        return "ok"

    outcome, spans = await run(agency(slow, retry=ov.Retry(backoff=NO_WAIT)), telemetry)
    assert outcome.ok
    first, second = named(spans, "invoke_agent slow")
    assert first.status == "ERROR"
    assert first.attributes["error.type"] == "AttemptTimeout"
    assert "overstory.cancelled" not in first.attributes
    assert second.status == "UNSET"


async def test_goal_timeout_marks_work_cancelled_and_the_goal_timed_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Past the goal's deadline the running spans end cancelled, not ERROR; the goal span
    says timed_out with error.type timeout."""
    telemetry, _ = memory_telemetry()

    @ov.leaf
    async def stuck(task: ov.Task, ctx: ov.Context) -> str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    outcome, spans = await run(agency(stuck), telemetry, timeout=3.0)
    assert outcome.status is ov.Status.TIMED_OUT
    for name in ("invoke_agent director", "invoke_agent sales", "invoke_agent stuck"):
        span = one(spans, name)
        assert span.attributes["overstory.cancelled"] is True, name
        assert span.status == "UNSET", name
        assert "error.type" not in span.attributes, name
    workflow = one(spans, "invoke_workflow agency")
    assert workflow.attributes["overstory.goal.status"] == "timed_out"
    assert workflow.attributes["error.type"] == "timeout"
    assert workflow.status == "ERROR"


async def test_cancelled_goal_is_not_a_failure(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling a goal ends every span with overstory.cancelled=true and no ERROR."""
    telemetry, _ = memory_telemetry()
    started = trio.Event()

    @ov.leaf
    async def waits(task: ov.Task, ctx: ov.Context) -> str:
        started.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with agency(waits).running(instrumentation=telemetry.instrumentation) as runner:
        handle = await runner.submit("wait")
        await started.wait()
        handle.cancel()
        outcome = await handle.outcome()
    spans = telemetry.spans()
    assert outcome.status is ov.Status.CANCELLED
    assert len(spans) == 4
    assert all(s.attributes.get("overstory.cancelled") is True for s in spans)
    assert all(s.status == "UNSET" for s in spans)
    assert one(spans, "invoke_workflow agency").attributes["overstory.goal.status"] == "cancelled"


async def test_handoff_event_and_sibling_spans(autojump_clock: trio.testing.MockClock) -> None:
    """A hand-off is an event on the supervisor's span; the receiving leaf's span is a
    sibling of the sender's, marked with the number of hand-offs that led to it."""
    telemetry, _ = memory_telemetry()

    @ov.leaf(description="writes mail")
    async def mail(task: ov.Task, ctx: ov.Context) -> Any:
        return ov.Handoff(to="crm", reason="needs the lead first", input=task.input)

    outcome, spans = await run(agency(mail, crm), telemetry, "write mail")
    assert outcome.output == "lead"
    sales = one(spans, "invoke_agent sales")
    (handoff,) = events(sales, "handoff")
    assert handoff["overstory.agent"] == "agency/director/sales/mail"
    assert handoff["overstory.next_agent"] == "agency/director/sales/crm"
    assert handoff["overstory.message"] == "needs the lead first"
    sender, receiver = one(spans, "invoke_agent mail"), one(spans, "invoke_agent crm")
    assert parent(spans, sender) == parent(spans, receiver) == sales
    assert receiver.attributes["overstory.handoffs"] == 1


async def test_fan_out_items_are_siblings_with_their_index(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each item of a fan-out is its own attempt span under the supervisor, with its index."""
    telemetry, _ = memory_telemetry()

    @ov.leaf
    async def research(task: ov.Task, ctx: ov.Context) -> str:
        await trio.sleep(1)
        return str(task.input)

    tree = ov.Tree(
        "agency",
        ov.Tactical(
            "sales", plan=[ov.Step("each", "research", for_each="input")], children=[research]
        ),
    )
    outcome, spans = await run(tree, telemetry, input=["a", "b", "c"])
    assert outcome.output == ["a", "b", "c"]
    items = named(spans, "invoke_agent research")
    assert sorted(s.attributes["overstory.item"] for s in items) == [0, 1, 2]
    root = one(spans, "invoke_agent sales")
    assert all(parent(spans, s) == root for s in items)
    workflow = one(spans, "invoke_workflow agency")
    assert workflow.service == "agency.tactical"  # the root's layer


async def test_plan_span_is_a_child_of_its_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A plan computed per goal is a ``plan {name}`` span under the supervisor's span, in
    its layer; an invalid plan marks it ERROR with PlanError."""
    telemetry, _ = memory_telemetry()

    async def plan(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
        return [ov.Step("look", "look the lead up", to="sales")]

    tree = ov.Tree(
        "agency",
        ov.Strategic("director", plan=plan, children=[ov.Tactical("sales", children=[crm])]),
    )
    outcome, spans = await run(tree, telemetry)
    assert outcome.ok
    planned = one(spans, "plan director")
    assert parent(spans, planned) == one(spans, "invoke_agent director")
    assert planned.service == "agency.strategic"
    assert planned.attributes["gen_ai.operation.name"] == "plan"
    assert planned.attributes["overstory.path"] == "agency/director"

    async def bad(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
        return [ov.Step("look", "look", to="nobody")]

    telemetry, _ = memory_telemetry()
    tree = ov.Tree(
        "agency",
        ov.Strategic("director", plan=bad, children=[ov.Tactical("sales", children=[crm])]),
    )
    outcome, spans = await run(tree, telemetry)
    assert outcome.status is ov.Status.FAILED
    assert one(spans, "plan director").attributes["error.type"] == "PlanError"


async def test_agent_restart_is_an_event_on_the_crashed_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stateful agent whose handle() raises is restarted: the restart, with its backoff,
    is an event on the span of the attempt that crashed it."""
    telemetry, _ = memory_telemetry()

    class Crm(ov.Agent):
        concurrency = 2  # the other instance serves the retry while this one restarts
        backoff = ov.Backoff(initial=0.5, cap=0.5, jitter=0.0)

        async def handle(self, task: ov.Task, ctx: ov.Context) -> str:
            if ctx.attempt == 1:
                raise ConnectionError("socket closed")
            return "ok"

    tree = ov.Tree("agency", ov.Tactical("sales", children=[Crm], retry=ov.Retry(backoff=NO_WAIT)))
    outcome, spans = await run(tree, telemetry)
    assert outcome.ok
    crashed, _ = named(spans, "invoke_agent Crm")
    (restart,) = events(crashed, "restart")
    assert restart["overstory.agent"] == "agency/sales/Crm#0"
    assert restart["overstory.backoff"] == 0.5
    assert restart["overstory.attempt"] == 1
    assert restart["error.type"] == "ConnectionError"


async def test_breaker_and_trip_events_are_on_the_deciding_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Breaker changes and an intensity trip are events on the tactical span."""
    telemetry, _ = memory_telemetry()

    @ov.leaf
    async def failing(task: ov.Task, ctx: ov.Context) -> str:
        raise ValueError("down")

    tree = agency(
        failing,
        retry=ov.Retry(attempts=3, backoff=NO_WAIT),
        breaker=ov.Breaker(failures=2, cooldown=60),
        intensity=ov.Intensity(max_failures=1, within=60),
    )
    outcome, spans = await run(tree, telemetry)
    assert outcome.status is ov.Status.FAILED
    sales = one(spans, "invoke_agent sales")
    names = [e.name for e in sales.events if e.name != "exception"]
    assert "trip" in names
    assert names[-1] == "escalate"
    (trip,) = events(sales, "trip")
    assert trip["overstory.agent"] == "agency/director/sales/failing"


async def test_single_service_mode(autojump_clock: trio.testing.MockClock) -> None:
    """per_layer=False reports every layer as the one service {base}; layers stay attributes."""
    telemetry, _ = memory_telemetry(per_layer=False, service_name="shop")
    _, spans = await run(agency(crm), telemetry)
    assert {s.service for s in spans} == {"shop"}
    assert {s.attributes["overstory.layer"] for s in spans} == {"strategic", "tactical", "leaf"}


async def test_service_name_overrides_the_tree_name(autojump_clock: trio.testing.MockClock) -> None:
    """service_name= is the base of the per-layer services and their namespace."""
    telemetry, _ = memory_telemetry(service_name="shop")
    _, spans = await run(agency(crm), telemetry)
    assert {s.service for s in spans} == {"shop.strategic", "shop.tactical", "shop.leaf"}
    assert {s.resource["service.namespace"] for s in spans} == {"shop"}


async def test_user_spans_and_tools_nest_under_the_leaf(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Spans user code starts with the global OpenTelemetry API, and ov.telemetry.tool()
    calls, are children of the leaf's span, in the leaf service, in the goal's trace."""
    telemetry, _ = memory_telemetry()

    @ov.telemetry.tool("score", description="Scores a lead")
    async def score(lead: str) -> int:
        await trio.sleep(0.1)
        return 3

    @ov.leaf
    async def worker(task: ov.Task, ctx: ov.Context) -> int:
        tracer = trace_api.get_tracer("my.http.client")
        with tracer.start_as_current_span("GET /leads"):
            await trio.sleep(0.1)
        with ov.telemetry.tool("crm.lookup", call_id="call-1") as span:
            span.set_attributes({"crm.rows": 1})
        return await score("ACME")

    outcome, spans = await run(agency(worker), telemetry)
    assert outcome.output == 3
    leaf = one(spans, "invoke_agent worker")
    http = one(spans, "GET /leads")
    lookup = one(spans, "execute_tool crm.lookup")
    scored = one(spans, "execute_tool score")
    for span in (http, lookup, scored):
        assert parent(spans, span) == leaf
        assert span.service == "agency.leaf"
    assert lookup.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "crm.lookup",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call-1",
        "gen_ai.conversation.id": outcome.goal_id,
        "overstory.layer": "leaf",
        "crm.rows": 1,
    }
    assert scored.attributes["gen_ai.tool.description"] == "Scores a lead"


async def test_a_failing_tool_is_error_and_a_cancelled_tool_is_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An exception leaving tool() marks its span ERROR; cancellation marks it cancelled."""
    telemetry, _ = memory_telemetry()

    @ov.leaf
    async def worker(task: ov.Task, ctx: ov.Context) -> str:
        with pytest.raises(KeyError), ov.telemetry.tool("lookup"):
            raise KeyError("lead")
        with trio.move_on_after(1), ov.telemetry.tool("slow"):
            await trio.sleep(5)
        return "ok"

    _, spans = await run(agency(worker), telemetry)
    lookup, slow = one(spans, "execute_tool lookup"), one(spans, "execute_tool slow")
    assert (lookup.status, lookup.attributes["error.type"]) == ("ERROR", "KeyError")
    assert (slow.status, slow.attributes["overstory.cancelled"]) == ("UNSET", True)


async def test_tool_outside_a_goal_does_nothing() -> None:
    """tool() outside every overstory span records nothing and still runs the code."""

    @ov.telemetry.tool("add")
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3
    with ov.telemetry.tool("x") as span:
        span.add_event("e", {})
    with pytest.raises(ValueError, match="non-empty name"):
        ov.telemetry.tool("")


async def test_goal_submitted_inside_a_span_starts_a_new_linked_trace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A goal submitted while another span is current (an HTTP request) gets its own trace,
    linked to that span."""
    telemetry, _ = memory_telemetry()
    outer = telemetry.instrumentation.tool("request")  # type: ignore[attr-defined]
    async with agency(crm).running(instrumentation=telemetry.instrumentation) as runner:
        with outer:
            handle = await runner.submit("go")
        await handle.outcome()
    spans = telemetry.spans()
    workflow = one(spans, "invoke_workflow agency")
    request = one(spans, "execute_tool request")
    assert workflow.trace_id != request.trace_id
    assert workflow.parent_id is None
    assert [link["span_id"] for link in workflow.links] == [request.span_id]


async def test_llm_chat_spans_nest_under_the_leaf(autojump_clock: trio.testing.MockClock) -> None:
    """A model call made with ov.ask inside a leaf is a ``chat {model}`` span under the
    leaf's span, in the leaf service (through the global provider configure() installs)."""
    from overstory.testing import ScriptedModel

    telemetry, _ = memory_telemetry()
    model = ScriptedModel("scripted-1")
    model.on(prompt="hello", reply="Hi there.")

    @ov.leaf
    async def greeter(task: ov.Task, ctx: ov.Context) -> str:
        return await ov.ask(model, "hello")

    outcome, spans = await run(agency(greeter), telemetry)
    assert outcome.output == "Hi there."
    (chat,) = [s for s in spans if s.name.startswith("chat")]
    assert parent(spans, chat) == one(spans, "invoke_agent greeter")
    assert chat.service == "agency.leaf"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
