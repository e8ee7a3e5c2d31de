"""Shared by the tests of overstory's LLM parts: a span recorder, a scripted server, and a
raw one that sends whatever bytes a test gives it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import overstory as ov
from overstory.llm import _ask
from overstory.testing import ScriptedModel, serve_openai

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))


class Spans:
    """The spans overstory's model calls finished while a test ran."""

    tracer = _provider.get_tracer("test")

    def all(self) -> list[ReadableSpan]:
        return list(_exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spans]:
    """Record the chat and execute_tool spans finished during the test, through a tracer
    provider of the test's own (whatever the process-wide provider is)."""
    monkeypatch.setattr(_ask, "_tracer", _provider.get_tracer("overstory"))
    _exporter.clear()
    yield Spans()
    _exporter.clear()


@pytest.fixture
def script() -> ScriptedModel:
    """A fresh scripted model."""
    return ScriptedModel("scripted-1")


@pytest.fixture
async def http_model(script: ScriptedModel, nursery: trio.Nursery) -> ov.OpenAIModel:
    """An OpenAIModel talking over loopback HTTP to a server answering from ``script``;
    quick retries and a short timeout so failure tests stay fast."""
    base_url = await nursery.start(serve_openai, script)
    return ov.OpenAIModel(
        "scripted-1",
        base_url=base_url,
        api_key="test-key",
        timeout=2.0,
        retries=2,
        backoff=ov.Backoff(initial=0.01, cap=0.02, jitter=0.0),
    )


@attrs.define
class RawServer:
    """A loopback HTTP server answering its n-th request with ``answers[n]`` (the last
    one once they run out), as raw bytes: for answers no real provider should send.
    ``hold`` keeps the connection open after an answer instead of reading on. ``flood``
    is sent ``floods`` times after an answer, then the connection is held: a body that
    never ends (of a bounded size, so a client that keeps all of it stays small)."""

    answers: list[bytes]
    hold: bool = False
    flood: bytes = b""
    floods: int = 0
    bodies: list[bytes] = attrs.Factory(list)
    connections: int = 0

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        task_status.started(f"http://127.0.0.1:{port}/v1")
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while await self._read_request(stream):
                    index = min(len(self.bodies), len(self.answers)) - 1
                    await stream.send_all(self.answers[index])
                    for _ in range(self.floods):
                        await stream.send_all(self.flood)
                    if self.hold or self.floods:
                        await trio.sleep_forever()

    async def _read_request(self, stream: trio.SocketStream) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            more = await stream.receive_some()
            if not more:
                return False
            data += more
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += await stream.receive_some()
        self.bodies.append(body)
        return True


async def raw_server(
    nursery: trio.Nursery,
    *answers: bytes,
    hold: bool = False,
    flood: bytes = b"",
    floods: int = 0,
    timeout: float = 2.0,
) -> tuple[RawServer, ov.OpenAIModel]:
    """A raw server sending ``answers`` (see :class:`RawServer`) and a model (retries=2,
    no backoff) talking to it."""
    server = RawServer(list(answers), hold=hold, flood=flood, floods=floods)
    base_url = await nursery.start(server.serve)
    model = ov.OpenAIModel(
        "m",
        base_url=base_url,
        timeout=timeout,
        retries=2,
        backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0),
    )
    return server, model


def chat_request(on_text: Callable[[str], None] | None = None) -> ov.ChatRequest:
    """A request saying hello from desk/a, streamed when ``on_text`` is given."""
    return ov.ChatRequest(messages=[ov.Message.user("hello")], agent="desk/a", on_text=on_text)


def http_answer(
    body: bytes | dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> bytes:
    """A raw HTTP/1.1 response: ``body`` as is, or as JSON."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    fields = {"content-type": "application/json", "content-length": str(len(content))}
    fields.update(headers or {})
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode() + b"\r\n" + content


def unended_head(*, status: int = 200, content_type: str = "application/json") -> bytes:
    """The head of a raw HTTP/1.1 response whose body has no length: it lasts until the
    connection closes."""
    return f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n\r\n".encode()


def completion(content: Any = "fine", **fields: Any) -> dict[str, Any]:
    """A chat completion answering ``content``, with ``fields`` added."""
    message = {"role": "assistant", "content": content}
    return {"choices": [{"message": message, "finish_reason": "stop"}], "model": "m", **fields}


def events(*chunks: dict[str, Any] | str) -> bytes:
    """A raw server-sent events answer: each chunk a ``data:`` event (a string as is)."""
    body = b"".join(
        f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks
    )
    return http_answer(body, headers={"content-type": "text/event-stream"})
