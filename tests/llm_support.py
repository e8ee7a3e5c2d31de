"""Shared by the tests of overstory's LLM parts: a span recorder and a scripted server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import overstory as ov
from overstory.testing import ScriptedModel, serve_openai

_exporter = InMemorySpanExporter()
_installed = False


def _install() -> None:
    global _installed
    if _installed:
        return
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_exporter))
    _installed = True


class Spans:
    """The spans finished while a test ran."""

    def all(self) -> list[ReadableSpan]:
        return list(_exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Record the spans finished during the test."""
    _install()
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
