"""ov.OpenAIModel over real loopback HTTP: requests, streaming, retries, refusals, timeouts."""

from __future__ import annotations

import contextlib
import json
import math
import types

import attrs
import httpx
import pytest
import trio
from llm_support import (  # noqa: F401 - fixtures
    Spans,
    chat_request,
    completion,
    events,
    http_answer,
    http_model,
    raw_server,
    script,
    spans,
)
from support import collector_off

import overstory as ov
from overstory.llm._model import estimate_tokens
from overstory.llm._openai import parse_retry_after
from overstory.testing import Fail, Hang, ScriptedModel, serve_openai, tool_call


@attrs.frozen
class Answer:
    text: str


async def test_round_trip_over_http(script: ScriptedModel, http_model: ov.OpenAIModel) -> None:
    """A structured answer, a tool round and usage travel over HTTP; the server sees the
    calling agent, the purpose and the schema."""

    def double(n: int) -> int:
        """Double it."""
        return 2 * n

    script.on(agent="billing", reply=tool_call("double", n=21), times=1, usage=(30, 5))
    script.on(agent="billing", reply={"text": "42"}, usage=(40, 6))
    answer = await ov.ask(
        http_model, "double 21", output=Answer, tools=[double], agent="desk/billing"
    )
    assert answer == Answer("42")
    first, second = script.calls
    assert first.agent == "desk/billing"
    assert first.purpose == "answer"
    assert first.schema is not None
    assert first.schema_name == "Answer"
    assert [t.name for t in first.tools] == ["double"]
    tool_messages = [m for m in second.messages if m.role == "tool"]
    assert tool_messages[0].content == "42"
    assert second.messages[-2].tool_calls[0].name == "double"


async def test_usage_is_reported_on_chat_spans(
    script: ScriptedModel, http_model: ov.OpenAIModel, spans: Spans
) -> None:
    """The provider's token counts end up as gen_ai.usage.* on the chat span."""
    script.on(reply="hi", usage=(123, 45))
    await ov.ask(http_model, "hello")
    (chat,) = spans.named("chat scripted-1")
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.usage.input_tokens"] == 123
    assert chat.attributes["gen_ai.usage.output_tokens"] == 45
    assert chat.attributes["overstory.usage.estimated"] is False


async def test_streaming_delivers_text_as_it_arrives(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """With on_text, the answer streams (server-sent events) piece by piece; the pieces
    make up the answer and usage still arrives."""
    script.on(reply="Your refund is on its way.", usage=(9, 7))
    pieces: list[str] = []
    answer = await ov.ask(http_model, "refund?", on_text=pieces.append)
    assert answer == "Your refund is on its way."
    assert len(pieces) > 1
    assert "".join(pieces) == answer


async def test_streamed_tool_calls_are_assembled(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """Tool calls arriving in a stream are assembled and run like any other."""

    def echo(word: str) -> str:
        """Echo."""
        return word

    script.on(reply=tool_call("echo", word="hey"), times=1)
    script.on(reply="done")
    assert await ov.ask(http_model, "go", tools=[echo], on_text=lambda _: None) == "done"
    assert [m.content for m in script.calls[1].messages if m.role == "tool"] == ["hey"]


async def test_429_is_retried_after_retry_after(
    script: ScriptedModel, http_model: ov.OpenAIModel, spans: Spans
) -> None:
    """A 429 with Retry-After is retried after that many seconds, then succeeds; the retry
    is an event on the chat span."""
    script.on(reply=Fail(429, retry_after=0.2, message="slow down"), times=1)
    script.on(reply="ok")
    start = trio.current_time()
    assert await ov.ask(http_model, "hi") == "ok"
    assert trio.current_time() - start >= 0.2
    assert len(script.calls) == 2
    (chat,) = spans.named("chat scripted-1")
    (event,) = [e for e in chat.events if e.name == "overstory.provider_retry"]
    assert event.attributes is not None
    assert event.attributes["http.response.status_code"] == 429
    assert event.attributes["overstory.backoff"] == pytest.approx(0.2)


async def test_5xx_exhausts_retries_into_provider_error(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """Persistent 503s are tried retries + 1 times, then surface as ProviderError (retryable
    by supervisors) with the status."""
    script.on(reply=Fail(503, message="overloaded"))
    with pytest.raises(ov.ProviderError) as caught:
        await ov.ask(http_model, "hi", agent="desk/tech")
    assert len(script.calls) == 3
    assert caught.value.status == 503
    assert caught.value.path == "desk/tech"
    assert "overloaded" in str(caught.value)
    assert not caught.value.fatal


async def test_retried_failures_leave_no_cycle_behind(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """The retried failures behind a ProviderError are freed by reference counting: the
    last one, kept for its reason, does not hold the frame that holds it. (httpx's own
    request and response objects form cycles of their own, which are not looked at.)"""
    script.on(reply=Fail(503, message="overloaded"))
    with pytest.raises(ov.ProviderError):
        await ov.ask(http_model, "hi", agent="desk/tech")  # connections and imports warm
    with collector_off() as left, contextlib.suppress(ov.ProviderError):
        await ov.ask(http_model, "hi", agent="desk/tech")
    assert [o for o in left if isinstance(o, BaseException | types.FrameType)] == []


async def test_retry_after_beyond_the_limit_is_not_waited_for(script: ScriptedModel) -> None:
    """A Retry-After longer than max_retry_after gives up at once instead of sleeping."""
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(serve_openai, script)
        model = ov.OpenAIModel("m", base_url=base_url, retries=3, max_retry_after=1.0)
        script.on(reply=Fail(429, retry_after=3600))
        with trio.fail_after(5), pytest.raises(ov.ProviderError) as caught:
            await ov.ask(model, "hi")
        nursery.cancel_scope.cancel()
    assert len(script.calls) == 1
    assert caught.value.retry_after == 3600


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, ov.AuthenticationFailed), (403, ov.AuthenticationFailed), (400, ov.InvalidRequest)],
)
async def test_refusals_are_fatal_and_not_retried(
    script: ScriptedModel, http_model: ov.OpenAIModel, status: int, kind: type[Exception]
) -> None:
    """401/403 raise AuthenticationFailed and other 4xx InvalidRequest: both ov.Fatal, after
    exactly one request."""
    script.on(reply=Fail(status, message="no"))
    with pytest.raises(kind) as caught:
        await ov.ask(http_model, "hi", agent="desk/billing")
    assert isinstance(caught.value, ov.Fatal)
    assert isinstance(caught.value, ov.ProviderRejected)
    assert caught.value.status == status
    assert str(caught.value) == f"desk/billing: HTTP {status}: no"
    assert len(script.calls) == 1


async def test_timeouts_are_retried_then_fail(script: ScriptedModel) -> None:
    """A provider that never answers times out after `timeout` per attempt; attempts are
    retried, then ProviderError without a status."""
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(serve_openai, script)
        model = ov.OpenAIModel(
            "m",
            base_url=base_url,
            timeout=0.1,
            retries=1,
            backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0),
        )
        script.on(reply=Hang())
        with trio.fail_after(5), pytest.raises(ov.ProviderError, match=r"no answer within 0\.1 s"):
            await ov.ask(model, "hi")
        nursery.cancel_scope.cancel()
    assert len(script.calls) == 2


async def test_connection_errors_are_provider_errors() -> None:
    """Nothing listening: connection errors are retried and surface as ProviderError."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # the port is now (very likely) closed
    model = ov.OpenAIModel(
        "m",
        base_url=f"http://127.0.0.1:{port}/v1",
        retries=1,
        backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0),
    )
    with trio.fail_after(5), pytest.raises(ov.ProviderError, match="ConnectError"):
        await ov.ask(model, "hi")


async def test_cancelling_during_a_retry_wait_returns_at_once(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """Cancellation while waiting out a Retry-After ends the call promptly; Cancelled is
    not retried and not turned into a failure."""
    script.on(reply=Fail(429, retry_after=30))
    model = attrs.evolve(http_model, max_retry_after=60)
    with trio.move_on_after(0.3) as scope:
        await ov.ask(model, "hi")
    assert scope.cancelled_caught
    assert len(script.calls) == 1


async def test_malformed_answers_are_retried() -> None:
    """A 200 whose body is not a chat completion counts as a provider failure."""
    bodies = [b"<html>gateway</html>", json.dumps(_completion("fine")).encode()]

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies.pop(0))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        model = ov.OpenAIModel(
            "m",
            base_url="http://provider.test/v1",
            client=client,
            backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0),
        )
        assert await ov.ask(model, "hi") == "fine"
    assert bodies == []


def _completion(text: str) -> dict[str, object]:
    return {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "model": "m-2025",
    }


async def test_request_body_and_headers() -> None:
    """The body follows the chat-completions format (response_format json_schema, tools,
    options); the key is sent as a bearer token; missing usage is estimated."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_completion('{"text": "x"}'))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        model = ov.OpenAIModel(
            "gpt-test",
            base_url="http://provider.test/v1/",
            api_key="sk-1",
            options={"seed": 7},
            client=client,
        )
        response = await model.complete(
            ov.ChatRequest(
                messages=[ov.Message.user("hi")],
                schema={"type": "object"},
                schema_name="Answer",
                temperature=0.0,
                agent="desk/a",
                purpose="route",
            )
        )
    (request,) = seen
    assert str(request.url) == "http://provider.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-1"
    assert request.headers["x-overstory-agent"] == "desk/a"
    assert request.headers["x-overstory-purpose"] == "route"
    body = json.loads(request.content)
    assert body == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Answer", "schema": {"type": "object"}},
        },
        "temperature": 0.0,
        "seed": 7,
    }
    assert response.estimated
    assert response.input_tokens == 1
    assert response.model == "m-2025"


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_BASE_URL and OPENAI_API_KEY are read when the model is created; explicit
    arguments win; without a key no Authorization is sent; the key is not in the repr."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    model = ov.OpenAIModel("llama3.2")
    assert model.base_url == "http://localhost:11434/v1"
    assert model.api_key == "sk-env"
    assert "sk-env" not in repr(model)
    assert ov.OpenAIModel("m", base_url="http://x/v1", api_key=None).api_key is None
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    default = ov.OpenAIModel("gpt-4o-mini")
    assert default.base_url == "https://api.openai.com/v1"
    assert default.api_key is None


def test_configuration_is_validated() -> None:
    """Nonsense settings are refused when the model is created."""
    with pytest.raises(ValueError, match="structured"):
        ov.OpenAIModel("m", structured="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        ov.OpenAIModel("m", timeout=0)
    with pytest.raises(ValueError, match="retries"):
        ov.OpenAIModel("m", retries=-1)
    assert ov.OpenAIModel("m").max_answer_bytes == 16 * 1024 * 1024
    for bound in (0, -1, 2.5, True, "1"):
        with pytest.raises(ValueError, match="max_answer_bytes"):
            ov.OpenAIModel("m", max_answer_bytes=bound)  # type: ignore[arg-type]


def test_parse_retry_after() -> None:
    """Retry-After in seconds or as an HTTP date, retry-after-ms first; junk is ignored."""
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.05"}) == 0.05
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480) == (
        10.0
    )
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({}) is None
    assert not math.isnan(parse_retry_after({"retry-after-ms": "x", "retry-after": "1"}) or 0)


def _tool_answer(function: dict[str, object]) -> bytes:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": function}],
    }
    return http_answer({"choices": [{"message": message, "finish_reason": "tool_calls"}]})


async def test_a_body_that_does_not_decode_is_a_malformed_answer(nursery: trio.Nursery) -> None:
    """A corrupt gzip body is a malformed answer: retried, then ProviderError."""
    corrupt = http_answer(b"\x1f\x8b not gzip", headers={"content-encoding": "gzip"})
    server, model = await raw_server(nursery, corrupt)
    with pytest.raises(ov.ProviderError, match=r"malformed answer \(DecodingError") as caught:
        await model.complete(chat_request())
    assert caught.value.status == 200
    assert len(server.bodies) == 3


@pytest.mark.parametrize(
    ("usage", "counted"),
    [
        ('{"prompt_tokens": -1000000, "completion_tokens": 5}', None),
        ('{"prompt_tokens": true, "completion_tokens": true}', None),
        ('{"prompt_tokens": "x", "completion_tokens": 5}', None),
        ('{"prompt_tokens": Infinity, "completion_tokens": 5}', None),
        ('{"prompt_tokens": 3, "completion_tokens": Infinity}', (3, 0)),
        ('{"prompt_tokens": 3, "completion_tokens": -5}', (3, 0)),
        ('{"prompt_tokens": 3, "completion_tokens": "x"}', (3, 0)),
        ('{"prompt_tokens": 3, "completion_tokens": 4}', (3, 4)),
    ],
)
async def test_token_counts_that_are_no_counts_are_ignored(
    nursery: trio.Nursery, usage: str, counted: tuple[int, int] | None
) -> None:
    """A usage count that is not an int >= 0 counts as absent: no prompt_tokens means
    estimated counts, no completion_tokens none; in answers and in streams alike."""
    counts = json.loads(usage)  # json writes Infinity back as it reads it
    answer = completion("hi", usage=counts)
    chunk = {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}], "usage": counts}
    _, model = await raw_server(nursery, http_answer(answer), events(chunk, "[DONE]"))
    for request in (chat_request(), chat_request(on_text=lambda _: None)):
        response = await model.complete(request)
        if counted is None:
            assert response.estimated
            assert response.input_tokens == estimate_tokens(["hello"])
            assert response.output_tokens == estimate_tokens(["hi"])
        else:
            assert not response.estimated
            assert (response.input_tokens, response.output_tokens) == counted


_PIECE = {"choices": [{"delta": {"content": "Hello "}}]}
_ROLE = {"choices": [{"delta": {"role": "assistant"}}]}
_STOP = {"choices": [{"delta": {}, "finish_reason": "stop"}]}


@pytest.mark.parametrize(
    "answer",
    [
        events(_ROLE, _ROLE),
        events(),
        http_answer(b": ping\n\nevent: x\n\n", headers={"content-type": "text/event-stream"}),
    ],
    ids=["truncated", "empty", "comments only"],
)
async def test_a_stream_cut_short_is_a_malformed_answer(
    nursery: trio.Nursery, answer: bytes
) -> None:
    """A stream that ends with neither [DONE] nor a finish_reason, before any text, is
    retried, then ProviderError; one with a finish_reason but no [DONE] is complete."""
    server, model = await raw_server(nursery, answer, answer, answer, events(_PIECE, _STOP))
    with pytest.raises(ov.ProviderError, match=r"ended before \[DONE\] or a finish_reason"):
        await model.complete(chat_request(on_text=lambda _: None))
    assert len(server.bodies) == 3
    assert (await model.complete(chat_request(on_text=lambda _: None))).message.content == "Hello "


async def test_a_stream_returns_at_done(nursery: trio.Nursery) -> None:
    """A server that sends [DONE] but never ends the body does not hold the answer back
    until the timeout."""
    body = (
        b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in (_PIECE, _STOP))
        + b"data: [DONE]\n\n"
    )
    unended = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n"
    )
    # Waiting for the body's end would run into the timeout, and every retry with it:
    # the call would fail rather than answer.
    _, model = await raw_server(nursery, unended, hold=True, timeout=5.0)
    response = await model.complete(chat_request(on_text=lambda _: None))
    assert response.message.content == "Hello "
    assert response.finish_reason == "stop"


async def test_tool_arguments_sent_as_an_object_are_json(nursery: trio.Nursery) -> None:
    """Arguments sent as a JSON object rather than a string arrive as that object's JSON."""
    _, model = await raw_server(nursery, _tool_answer({"name": "f", "arguments": {"x": 1}}))
    (call,) = (await model.complete(chat_request())).message.tool_calls
    assert call == ov.ToolCall(id="c1", name="f", arguments='{"x": 1}')


async def test_a_tool_call_without_a_name_is_a_malformed_answer(nursery: trio.Nursery) -> None:
    """A null tool name is a malformed answer, not a tool called "None"."""
    server, model = await raw_server(nursery, _tool_answer({"name": None, "arguments": "{}"}))
    with pytest.raises(ov.ProviderError, match="tool call 0 has no name"):
        await model.complete(chat_request())
    assert len(server.bodies) == 3


async def test_an_error_object_with_a_200_reports_its_message(nursery: trio.Nursery) -> None:
    """A 200 whose body is an error object fails with the server's message."""
    error = http_answer({"error": {"message": "context length exceeded", "type": "x"}})
    server, model = await raw_server(nursery, error)
    with pytest.raises(ov.ProviderError, match="error in answer: context length exceeded"):
        await model.complete(chat_request())
    assert len(server.bodies) == 3


async def test_lone_surrogates_are_replaced(nursery: trio.Nursery) -> None:
    """A lone surrogate escape in content or tool arguments becomes U+FFFD, so the
    answer can be sent back in the next request."""
    surrogate = http_answer(b'{"choices": [{"message": {"content": "oops \\ud800"}}]}')
    arguments = _tool_answer({"name": "f", "arguments": '{"w": "\ud800"}'})
    server, model = await raw_server(nursery, surrogate, http_answer(completion('{"text": "ok"}')))
    assert await ov.ask(model, "hi", output=Answer) == Answer("ok")
    assert "oops \ufffd" in json.loads(server.bodies[1])["messages"][-2]["content"]
    server.answers[:] = [arguments]
    (call,) = (await model.complete(chat_request())).message.tool_calls
    assert call.arguments == '{"w": "\ufffd"}'


async def test_content_parts_are_joined(nursery: trio.Nursery) -> None:
    """Content sent as a list of content parts is the text of its text parts."""
    parts = [
        {"type": "text", "text": "hello "},
        {"type": "image_url"},
        {"type": "text", "text": "you"},
    ]
    _, model = await raw_server(nursery, http_answer(completion(parts)))
    assert (await model.complete(chat_request())).message.content == "hello you"


@pytest.mark.parametrize("content", [42, {"text": "hi"}])
async def test_content_that_is_no_text_is_a_malformed_answer(
    nursery: trio.Nursery, content: object
) -> None:
    """Content that is neither text, null nor content parts is a malformed answer."""
    server, model = await raw_server(nursery, http_answer(completion(content)))
    with pytest.raises(ov.ProviderError, match=r"malformed answer \(TypeError: content of type"):
        await model.complete(chat_request())
    assert len(server.bodies) == 3
