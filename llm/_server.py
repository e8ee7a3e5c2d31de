"""A loopback OpenAI-compatible HTTP server that answers from a :class:`ScriptedModel`.

Real HTTP/1.1 (h11 on trio sockets, keep-alive, server-sent events for ``stream``), so
tests exercise the real client: status codes, ``Retry-After``, timeouts, streaming.
It serves ``POST /v1/chat/completions`` and ``GET /v1/models``.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import h11
import trio

from overstory.llm._model import ChatRequest, Message, ToolCall, ToolSpec
from overstory.llm._scripted import Answer, ScriptedModel, UnscriptedRequest

__all__ = ["serve_openai"]

_ids = itertools.count(1)
_MAX_BODY = 8 * 1024 * 1024


async def serve_openai(
    model: ScriptedModel,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``model`` over HTTP until cancelled; use with ``nursery.start``, which returns
    the base URL (``http://127.0.0.1:PORT/v1``) to give an :class:`~overstory.OpenAIModel`.

    ``port=0`` picks a free port. The server only listens on ``host``: keep it loopback.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    task_status.started(f"http://{host}:{bound[1]}/v1")

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_connection(stream, model)

    await trio.serve_listeners(handler, listeners)


class _Closed(Exception):
    pass


async def _serve_connection(stream: trio.SocketStream, model: ScriptedModel) -> None:
    connection = h11.Connection(h11.SERVER)
    try:
        while True:
            received = await _receive_request(connection, stream)
            if received is None:
                return
            request, body = received
            await _respond(connection, stream, request, body, model)
            if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()
    except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        await stream.aclose()


async def _receive_request(
    connection: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            connection.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > _MAX_BODY:
                raise _Closed
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)


async def _send(connection: h11.Connection, stream: trio.SocketStream, event: Any) -> None:
    data = connection.send(event)
    if data:
        await stream.send_all(data)


async def _send_json(
    connection: h11.Connection,
    stream: trio.SocketStream,
    status: int,
    payload: Any,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    content = json.dumps(payload).encode()
    await _send(
        connection,
        stream,
        h11.Response(
            status_code=status,
            headers=[
                ("content-type", "application/json"),
                ("content-length", str(len(content))),
                *(headers or []),
            ],
        ),
    )
    await _send(connection, stream, h11.Data(data=content))
    await _send(connection, stream, h11.EndOfMessage())


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None}}


async def _respond(
    connection: h11.Connection,
    stream: trio.SocketStream,
    request: h11.Request,
    body: bytes,
    model: ScriptedModel,
) -> None:
    target = request.target.decode("latin-1").split("?", 1)[0].rstrip("/")
    method = request.method.decode("latin-1")
    if method == "GET" and target in ("/v1/models", "/models"):
        await _send_json(
            connection,
            stream,
            200,
            {"object": "list", "data": [{"id": model.name, "object": "model"}]},
        )
        return
    if method != "POST" or target not in ("/v1/chat/completions", "/chat/completions"):
        await _send_json(
            connection, stream, 404, _error(f"no route {method} {target}", "invalid_request_error")
        )
        return
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.headers
    }
    try:
        data = json.loads(body)
        chat = _chat_request(data, headers)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        await _send_json(
            connection, stream, 400, _error(f"invalid body: {exc}", "invalid_request_error")
        )
        return
    try:
        answer = model.answer(chat)
    except UnscriptedRequest as exc:
        await _send_json(connection, stream, 400, _error(str(exc), "invalid_request_error"))
        return
    if answer.delay:
        await trio.sleep(answer.delay)
    if answer.hang:
        await trio.sleep_forever()
    if answer.failure is not None:
        failure = answer.failure
        extra = []
        if failure.retry_after is not None:
            extra.append(("retry-after", f"{failure.retry_after:g}"))
        kind = "rate_limit_error" if failure.status == 429 else "api_error"
        await _send_json(connection, stream, failure.status, _error(failure.message, kind), extra)
        return
    if data.get("stream"):
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        await _stream(connection, stream, answer, model.name, include_usage)
    else:
        await _send_json(connection, stream, 200, _completion(answer, model.name))


def _content(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    # Content parts: keep the text ones.
    return "".join(part.get("text", "") for part in value if isinstance(part, dict))


def _chat_request(data: dict[str, Any], headers: dict[str, str]) -> ChatRequest:
    messages = tuple(
        Message(
            role=m["role"],
            content=_content(m.get("content")),
            tool_calls=tuple(
                ToolCall(
                    id=c["id"],
                    name=c["function"]["name"],
                    arguments=c["function"].get("arguments") or "{}",
                )
                for c in m.get("tool_calls") or ()
            ),
            tool_call_id=m.get("tool_call_id"),
        )
        for m in data["messages"]
    )
    tools = tuple(
        ToolSpec(
            name=t["function"]["name"],
            description=t["function"].get("description", ""),
            parameters=t["function"].get("parameters", {}),
        )
        for t in data.get("tools") or ()
    )
    response_format = data.get("response_format") or {}
    schema = None
    schema_name = "answer"
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema", {})
        schema_name = response_format["json_schema"].get("name", "answer")
    elif response_format.get("type") == "json_object":
        schema = {"type": "object"}
    return ChatRequest(
        messages=messages,
        tools=tools,
        schema=schema,
        schema_name=schema_name,
        temperature=data.get("temperature"),
        max_tokens=data.get("max_tokens"),
        agent=headers.get("x-overstory-agent", ""),
        purpose=headers.get("x-overstory-purpose", "answer"),
    )


def _wire_calls(message: Message) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in message.tool_calls
    ]


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def _completion(answer: Answer, model: str) -> dict[str, Any]:
    message = answer.message
    assert message is not None
    wire: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = _wire_calls(message)
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": wire,
                "finish_reason": "tool_calls" if message.tool_calls else "stop",
            }
        ],
        "usage": _usage(answer),
    }


async def _stream(
    connection: h11.Connection,
    stream: trio.SocketStream,
    answer: Answer,
    model: str,
    include_usage: bool,
) -> None:
    message = answer.message
    assert message is not None
    await _send(
        connection,
        stream,
        h11.Response(
            status_code=200,
            headers=[("content-type", "text/event-stream"), ("cache-control", "no-cache")],
        ),
    )
    ident = f"chatcmpl-{next(_ids)}"

    async def event(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {"id": ident, "object": "chat.completion.chunk", "model": model, "choices": choices}
        chunk.update(extra)
        await _send(connection, stream, h11.Data(data=f"data: {json.dumps(chunk)}\n\n".encode()))

    await event([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
    text = message.content or ""
    # Word-sized pieces, as providers stream them.
    pieces = [piece for piece in text.replace(" ", " \0").split("\0") if piece]
    for piece in pieces:
        await event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    if message.tool_calls:
        calls = [{"index": i, **call} for i, call in enumerate(_wire_calls(message))]
        await event([{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}])
    finish = "tool_calls" if message.tool_calls else "stop"
    await event([{"index": 0, "delta": {}, "finish_reason": finish}])
    if include_usage:
        await event([], usage=_usage(answer))
    await _send(connection, stream, h11.Data(data=b"data: [DONE]\n\n"))
    await _send(connection, stream, h11.EndOfMessage())
