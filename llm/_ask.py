"""Asking a model: one conversation with tools, validated output, spans and budget charges.

Every model call of overstory goes through :func:`call_model`, which opens a ``chat
{model}`` span, charges the goal's budget with the call's tokens and cost, and refuses to
call at all once the budget is exhausted. :func:`ask` builds the conversation on top:
tool rounds (each tool call an ``execute_tool {tool}`` span), structured output
validated into an attrs class with cattrs, and bounded repair rounds for invalid answers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

import cattrs
import trio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from overstory._errors import BudgetExhausted, OverstoryError
from overstory.hierarchy._context import Context, current_context
from overstory.hierarchy._serde import converter
from overstory.llm._errors import InvalidOutput, ModelError
from overstory.llm._model import ChatRequest, ChatResponse, Message, Model, ToolCall, ToolSpec
from overstory.llm._schema import Tool, schema_of, tool_of

__all__ = ["ask", "call_model", "check_rounds", "converse", "encode", "parse_answer"]

T = TypeVar("T")

logger = logging.getLogger("overstory")
_tracer = trace.get_tracer("overstory")

#: Checks a validated answer beyond its shape; returns what is wrong, or ``None``.
Check = Callable[[Any], str | None]


def check_rounds(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


async def call_model(model: Model, request: ChatRequest, ctx: Context | None) -> ChatResponse:
    """Call ``model`` once in a ``chat {model}`` span and charge ``ctx``'s goal for it.

    Raises :class:`~overstory.BudgetExhausted` before calling when the goal's budget is
    already spent, and after the call when this call's tokens or cost spend it (the goal
    is then cancelled). The model's own errors pass through, recorded on the span.
    """
    if ctx is not None and ctx.usage.exhausted is not None:
        raise BudgetExhausted(ctx.path, ctx.usage.exhausted)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model.name,
        "overstory.purpose": request.purpose,
    }
    if request.agent:
        attributes["overstory.path"] = request.agent
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    with _tracer.start_as_current_span(
        f"chat {model.name}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            response = await model.complete(request)
        except trio.Cancelled:
            span.set_attribute("overstory.cancelled", True)
            raise
        except Exception as exc:
            _record_failure(span, exc)
            raise
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": response.input_tokens,
                "gen_ai.usage.output_tokens": response.output_tokens,
                "gen_ai.response.model": response.model or model.name,
                "overstory.usage.estimated": response.estimated,
            }
        )
        if response.finish_reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
    if ctx is not None:
        price = model.price
        ctx.charge(
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cost=price.cost(response.input_tokens, response.output_tokens) if price else 0.0,
        )
    return response


def _record_failure(span: trace.Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__name__)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```$", re.DOTALL)


def parse_answer(text: str, output: type[T]) -> T:
    """Decode ``text`` (JSON, optionally inside one Markdown code fence) into ``output``
    with overstory's cattrs converter. Raises ``ValueError`` saying what is wrong."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced is not None:
        stripped = fenced.group(1).strip()
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not JSON ({exc})") from None
    try:
        return converter.structure(data, output)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path="answer"))
        raise ValueError(f"the answer does not match the schema: {problems}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"the answer does not match the schema: {exc!r}") from None


def _system_prompt(instructions: str, schema: Mapping[str, Any] | None) -> str:
    parts = [instructions.strip()] if instructions.strip() else []
    if schema is not None:
        parts.append(
            "Answer with a single JSON value, and nothing else, that matches this JSON "
            f"schema:\n{json.dumps(schema, ensure_ascii=False)}"
        )
    return "\n\n".join(parts)


def encode(value: Any) -> str:
    """A value as prompt text: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(converter.unstructure(value), ensure_ascii=False, default=repr)


async def _run_tool(tool: Tool, call: ToolCall, ctx: Context | None) -> str:
    """Run one tool call in an ``execute_tool`` span; what it returns or what went wrong
    becomes the tool message's text. overstory's own errors (``Fatal``, budget) and
    cancellation propagate; any other exception is reported to the model."""
    with _tracer.start_as_current_span(
        f"execute_tool {tool.name}",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.type": "function",
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            arguments = _tool_arguments(tool, call.arguments)
        except ValueError as exc:
            _record_failure(span, exc)
            return f"error: invalid arguments for {tool.name}: {exc}"
        if tool.takes_context:
            arguments["ctx"] = ctx
        try:
            result = tool.fn(**arguments)
            if tool.is_async:
                result = await result
        except OverstoryError as exc:
            _record_failure(span, exc)
            raise
        except Exception as exc:
            _record_failure(span, exc)
            return f"error: {type(exc).__name__}: {exc}"
        return encode(result)


def _tool_arguments(tool: Tool, text: str) -> dict[str, Any]:
    try:
        raw = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError("the arguments must be a JSON object")
    unknown = sorted(set(raw) - set(tool.parameters))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}")
    missing = [name for name in tool.schema["required"] if name not in raw]
    if missing:
        raise ValueError(f"missing parameter(s) {', '.join(missing)}")
    arguments: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            arguments[name] = converter.structure(value, tool.parameters[name])
        except Exception as exc:
            raise ValueError(f"{name}: {exc}") from None
    return arguments


@overload
async def ask(
    model: Model,
    prompt: str | Sequence[Message],
    *,
    output: None = None,
    instructions: str = "",
    tools: Iterable[Callable[..., Any]] = (),
    ctx: Context | None = None,
    agent: str | None = None,
    purpose: str = "answer",
    repairs: int = 1,
    max_tool_rounds: int = 8,
    temperature: float | None = None,
    max_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> str: ...
@overload
async def ask(
    model: Model,
    prompt: str | Sequence[Message],
    *,
    output: type[T],
    instructions: str = "",
    tools: Iterable[Callable[..., Any]] = (),
    ctx: Context | None = None,
    agent: str | None = None,
    purpose: str = "answer",
    repairs: int = 1,
    max_tool_rounds: int = 8,
    temperature: float | None = None,
    max_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> T: ...
async def ask(
    model: Model,
    prompt: str | Sequence[Message],
    *,
    output: type[Any] | None = None,
    instructions: str = "",
    tools: Iterable[Callable[..., Any]] = (),
    ctx: Context | None = None,
    agent: str | None = None,
    purpose: str = "answer",
    repairs: int = 1,
    max_tool_rounds: int = 8,
    temperature: float | None = None,
    max_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Any:
    """Ask ``model`` and return its answer: text, or an instance of ``output`` (an attrs
    class or any type cattrs structures) validated from the JSON it wrote.

    ``prompt`` is the user's message (or the whole conversation); ``instructions`` is
    the system message. ``tools`` are plain functions the model may call, at most
    ``max_tool_rounds`` rounds. An answer that is not valid JSON of the right shape is
    sent back with what is wrong, at most ``repairs`` times, before
    :class:`~overstory.InvalidOutput` is raised. ``on_text`` receives the answer's text as
    it streams in; a call whose stream fails part-way raises rather than retrying, so
    text is never sent to it twice (see :class:`~overstory.ChatRequest`).

    Every call is charged to ``ctx`` (default: the context of the agent running in this
    task, if any), so the goal's budget is enforced; ``agent`` (default ``ctx.path``)
    names the caller in spans, errors and scripts.
    """
    return await converse(
        model,
        prompt,
        output=output,
        instructions=instructions,
        tools=tools,
        ctx=ctx,
        agent=agent,
        purpose=purpose,
        repairs=repairs,
        max_tool_rounds=max_tool_rounds,
        temperature=temperature,
        max_tokens=max_tokens,
        on_text=on_text,
    )


async def converse(
    model: Model,
    prompt: str | Sequence[Message],
    *,
    output: type[Any] | None = None,
    instructions: str = "",
    tools: Iterable[Callable[..., Any]] = (),
    ctx: Context | None = None,
    agent: str | None = None,
    purpose: str = "answer",
    repairs: int = 1,
    max_tool_rounds: int = 8,
    temperature: float | None = None,
    max_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
    schema: Mapping[str, Any] | None = None,
    schema_name: str | None = None,
    check: Check | None = None,
) -> Any:
    """:func:`ask`, plus what overstory's own LLM parts need: an explicit ``schema`` (the
    router's enum of names) and a ``check`` of the validated answer, whose complaint is
    repaired like a shape error."""
    check_rounds("repairs", repairs)
    check_rounds("max_tool_rounds", max_tool_rounds)
    if ctx is None:
        ctx = current_context()
    path = agent if agent is not None else (ctx.path if ctx is not None else "")
    offered = {t.name: t for t in (tool_of(fn) for fn in tools)}
    if output is not None and output is not str and schema is None:
        schema = schema_of(output)
    structured = output is not None and output is not str
    messages: list[Message] = []
    system = _system_prompt(instructions, schema if structured else None)
    if system:
        messages.append(Message.system(system))
    if isinstance(prompt, str):
        messages.append(Message.user(prompt))
    else:
        messages.extend(prompt)
    specs = tuple(
        ToolSpec(name=t.name, description=t.description, parameters=t.schema)
        for t in offered.values()
    )
    tool_rounds = 0
    repairs_left = repairs
    while True:
        request = ChatRequest(
            messages=messages,
            tools=specs,
            schema=schema if structured else None,
            schema_name=schema_name or _schema_name(output),
            temperature=temperature,
            max_tokens=max_tokens,
            agent=path,
            purpose=purpose,
            on_text=on_text,
        )
        response = await call_model(model, request, ctx)
        reply = response.message
        if reply.tool_calls:
            tool_rounds += 1
            if tool_rounds > max_tool_rounds:
                raise ModelError(
                    path, f"the model called tools in more than {max_tool_rounds} rounds"
                )
            messages.append(reply)
            for call in reply.tool_calls:
                tool = offered.get(call.name)
                if tool is None:
                    text = f"error: there is no tool named {call.name!r}"
                else:
                    text = await _run_tool(tool, call, ctx)
                messages.append(Message(role="tool", content=text, tool_call_id=call.id))
            continue
        text = reply.content or ""
        if not structured:
            return text
        assert output is not None
        try:
            value = parse_answer(text, output)
            problem = check(value) if check is not None else None
        except ValueError as exc:
            problem = str(exc)
        if problem is None:
            return value
        if repairs_left == 0:
            raise InvalidOutput(
                path,
                f"invalid answer after {repairs} repair round(s): {problem}",
                answer=text,
            )
        repairs_left -= 1
        logger.info("%s: asking %s to repair its answer: %s", path, model.name, problem)
        messages.append(Message.assistant(text))
        messages.append(
            Message.user(
                f"That answer is not valid: {problem}\nAnswer again with only the corrected JSON."
            )
        )


def _schema_name(output: type[Any] | None) -> str:
    name = getattr(output, "__name__", None)
    if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        return name
    return "answer"
