"""Shared by the tests of overstory's LLM parts: a span recorder and a scripted server."""

from __future__ import annotations

from collections.abc import Iterator

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
