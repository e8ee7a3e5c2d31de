"""ov.ask: one conversation with a model — text, validated output, repairs, tools, spans."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Literal

import attrs
import pytest
from llm_support import Spans, script, spans  # noqa: F401 - fixtures
from opentelemetry import trace

import overstory as ov
from overstory.llm._schema import schema_of, tool_of
from overstory.testing import ScriptedModel, UnscriptedRequest, tool_call


@attrs.frozen
class Refund:
    """A refund decision."""

    approved: bool
    amount: float
    reason: str = ""


async def test_text_answer_with_instructions(script: ScriptedModel) -> None:
    """Without output=, the answer is the model's text; instructions are the system message."""
    script.on(prompt="hello", reply="Hi there.")
    answer = await ov.ask(script, "hello", instructions="Be brief.", agent="desk/greeter")
    assert answer == "Hi there."
    (request,) = script.calls
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[0].content == "Be brief."
    assert request.agent == "desk/greeter"
    assert request.schema is None


async def test_structured_answer_is_validated_into_attrs_class(script: ScriptedModel) -> None:
    """With output=, the JSON answer is structured into the attrs class; the request carries
    its schema and the system message describes it."""
    script.on(reply={"approved": True, "amount": 12.5})
    answer = await ov.ask(script, "refund order 7?", output=Refund)
    assert answer == Refund(approved=True, amount=12.5)
    (request,) = script.calls
    assert request.schema == schema_of(Refund)
    assert request.schema_name == "Refund"
    assert "JSON schema" in (request.messages[0].content or "")


async def test_fenced_json_is_accepted(script: ScriptedModel) -> None:
    """A JSON answer wrapped in one Markdown code fence is accepted as it is."""
    script.on(reply='```json\n{"approved": false, "amount": 0}\n```')
    assert await ov.ask(script, "x", output=Refund) == Refund(approved=False, amount=0.0)


async def test_invalid_json_is_repaired_once(script: ScriptedModel) -> None:
    """An answer that is not JSON is sent back with the problem; the repaired answer is used."""
    script.on(reply="Sure! approved, 10 dollars", times=1)
    script.on(reply={"approved": True, "amount": 10})
    answer = await ov.ask(script, "refund?", output=Refund, repairs=1)
    assert answer == Refund(approved=True, amount=10.0)
    _first, second = script.calls
    assert [m.role for m in second.messages][-2:] == ["assistant", "user"]
    assert second.messages[-2].content == "Sure! approved, 10 dollars"
    assert "not JSON" in (second.messages[-1].content or "")


async def test_wrong_shape_is_repaired_with_the_field_named(script: ScriptedModel) -> None:
    """A JSON answer of the wrong shape is sent back naming the bad field."""
    script.on(reply={"approved": "maybe"}, times=1)
    script.on(reply={"approved": True, "amount": 1})
    await ov.ask(script, "refund?", output=Refund)
    repair = script.calls[1].messages[-1].content or ""
    assert "amount" in repair


async def test_invalid_after_repairs_raises_invalid_output(script: ScriptedModel) -> None:
    """After `repairs` failed repair rounds, InvalidOutput (a retryable ModelError) carries the
    last answer; exactly repairs + 1 calls were made."""
    script.on(reply="nope")
    with pytest.raises(ov.InvalidOutput) as caught:
        await ov.ask(script, "refund?", output=Refund, repairs=2, agent="desk/billing")
    assert len(script.calls) == 3
    assert caught.value.answer == "nope"
    assert caught.value.path == "desk/billing"
    assert isinstance(caught.value, ov.ModelError)
    assert not caught.value.fatal


async def test_zero_repairs_fails_at_once(script: ScriptedModel) -> None:
    """repairs=0 means the first invalid answer fails."""
    script.on(reply="nope")
    with pytest.raises(ov.InvalidOutput):
        await ov.ask(script, "x", output=Refund, repairs=0)
    assert len(script.calls) == 1


async def test_tools_are_called_and_results_sent_back(script: ScriptedModel, spans: Spans) -> None:
    """The model's tool calls run the plain functions (sync and async); results go back as tool
    messages, each call in an execute_tool span; then the model answers."""
    seen: list[object] = []

    def lookup_invoice(number: int) -> dict[str, object]:
        """Find an invoice by number."""
        seen.append(number)
        return {"number": number, "total": 40.0}

    async def customer_tier(email: Annotated[str, "the customer's e-mail"]) -> str:
        """The customer's support tier."""
        seen.append(email)
        return "gold"

    script.on(
        reply=[tool_call("lookup_invoice", number=7), tool_call("customer_tier", email="a@b.c")],
        times=1,
    )
    script.on(reply={"approved": True, "amount": 40})
    answer = await ov.ask(script, "refund 7", output=Refund, tools=[lookup_invoice, customer_tier])
    assert answer == Refund(approved=True, amount=40.0)
    assert seen == [7, "a@b.c"]
    first, second = script.calls
    assert [t.name for t in first.tools] == ["lookup_invoice", "customer_tier"]
    assert first.tools[1].parameters["properties"]["email"]["description"] == (
        "the customer's e-mail"
    )
    results = [m for m in second.messages if m.role == "tool"]
    assert json.loads(results[0].content or "") == {"number": 7, "total": 40.0}
    assert results[1].content == "gold"
    assert [s.name for s in spans.named("execute_tool lookup_invoice")] == [
        "execute_tool lookup_invoice"
    ]
    tool_span = spans.named("execute_tool customer_tier")[0]
    assert tool_span.attributes is not None
    assert tool_span.attributes["gen_ai.operation.name"] == "execute_tool"


async def test_tool_errors_are_reported_to_the_model(script: ScriptedModel) -> None:
    """A tool that raises, bad arguments and an unknown tool become error text for the model,
    not failures of the step."""

    def flaky(n: int) -> int:
        """Fails."""
        raise RuntimeError("database down")

    script.on(
        reply=[
            tool_call("flaky", n=1),
            tool_call("flaky", n="one"),
            tool_call("missing"),
        ],
        times=1,
    )
    script.on(reply="done")
    assert await ov.ask(script, "go", tools=[flaky]) == "done"
    results = [m.content or "" for m in script.calls[1].messages if m.role == "tool"]
    assert results[0] == "error: RuntimeError: database down"
    assert results[1].startswith("error: invalid arguments for flaky: n:")
    assert results[2] == "error: there is no tool named 'missing'"


async def test_fatal_from_a_tool_propagates(script: ScriptedModel) -> None:
    """ov.Fatal raised by a tool fails the call: the user asked for it."""

    def refuse() -> None:
        """Refuses."""
        raise ov.Fatal("account closed")

    script.on(reply=tool_call("refuse"))
    with pytest.raises(ov.Fatal, match="account closed"):
        await ov.ask(script, "go", tools=[refuse])


async def test_tool_rounds_are_bounded(script: ScriptedModel) -> None:
    """A model that keeps calling tools fails after max_tool_rounds rounds."""

    def ping() -> str:
        """Ping."""
        return "pong"

    script.on(reply=tool_call("ping"))
    with pytest.raises(ov.ModelError, match="more than 2 rounds"):
        await ov.ask(script, "go", tools=[ping], max_tool_rounds=2)
    assert len(script.calls) == 3


async def test_chat_span_nests_under_the_current_span(script: ScriptedModel, spans: Spans) -> None:
    """Each call is a `chat {model}` span, child of the span current at the call, with the
    GenAI operation, model and token usage."""
    script.on(reply="ok", usage=(11, 3))
    with spans.tracer.start_as_current_span("invoke_agent billing") as parent:
        await ov.ask(script, "hi")
    (chat,) = spans.named("chat scripted-1")
    assert chat.parent is not None
    assert chat.parent.span_id == parent.get_span_context().span_id
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == "scripted-1"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 11
    assert chat.attributes["gen_ai.usage.output_tokens"] == 3


async def test_failed_call_marks_its_span(script: ScriptedModel, spans: Spans) -> None:
    """A call that fails leaves an ERROR chat span with error.type."""
    script.on(reply=ov.testing.Fail(503))
    with pytest.raises(ov.ProviderError):
        await ov.ask(script, "hi")
    (chat,) = spans.named("chat scripted-1")
    assert chat.status.status_code is trace.StatusCode.ERROR
    assert chat.attributes is not None
    assert chat.attributes["error.type"] == "ProviderError"


async def test_unscripted_request_is_fatal(script: ScriptedModel) -> None:
    """A request no rule matches raises UnscriptedRequest, a Fatal naming agent and prompt."""
    script.on(agent="billing", reply="ok")
    with pytest.raises(UnscriptedRequest, match=r"'desk/tech'.*printer"):
        await ov.ask(script, "printer on fire", agent="desk/tech")
    assert issubclass(UnscriptedRequest, ov.Fatal)


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


@attrs.frozen
class Line:
    sku: str
    quantity: int = 1


@attrs.frozen
class Order:
    """An order."""

    lines: list[Line]
    tier: Tier
    channel: Literal["web", "phone"]
    note: str | None = None
    tags: tuple[str, ...] = ()
    extra: dict[str, float] = attrs.field(factory=dict, metadata={"description": "anything"})


def test_schema_of_attrs_classes() -> None:
    """Attrs classes become object schemas: fields with defaults are optional; enums, literals,
    unions, nested classes, collections and descriptions are described."""
    schema = schema_of(Order)
    assert schema["description"] == "An order."
    assert schema["required"] == ["lines", "tier", "channel"]
    properties = schema["properties"]
    assert properties["lines"]["items"]["required"] == ["sku"]
    assert properties["tier"] == {"enum": ["gold", "silver"]}
    assert properties["channel"] == {"enum": ["web", "phone"]}
    assert properties["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert properties["tags"] == {"type": "array", "items": {"type": "string"}}
    assert properties["extra"] == {
        "type": "object",
        "additionalProperties": {"type": "number"},
        "description": "anything",
    }


def test_schema_of_rejects_what_json_cannot_say() -> None:
    """Types without a JSON form, and non-string mapping keys, raise TypeError."""
    with pytest.raises(TypeError):
        schema_of(complex)
    with pytest.raises(TypeError, match="string keys"):
        schema_of(dict[int, str])


def test_tool_of_describes_functions_and_rejects_the_indescribable() -> None:
    """A tool's schema comes from its annotations; `ctx` is hidden from the model; *args,
    **kwargs and missing annotations are refused at once."""

    def refund(order: int, ctx: ov.Context, reason: str = "") -> str:
        """Refund an order.

        More details."""
        return ""

    tool = tool_of(refund)
    assert tool.description == "Refund an order."
    assert tool.takes_context
    assert tool.schema == {
        "type": "object",
        "properties": {"order": {"type": "integer"}, "reason": {"type": "string"}},
        "required": ["order"],
    }

    def splat(*args: int) -> None:
        """No."""

    def bare(x):  # type: ignore[no-untyped-def]
        """No."""

    with pytest.raises(TypeError, match=r"\*args"):
        tool_of(splat)
    with pytest.raises(TypeError, match="annotation"):
        tool_of(bare)
