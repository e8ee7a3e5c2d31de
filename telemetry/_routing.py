"""The global tracer provider overstory installs, so that spans user code starts with
``trace.get_tracer(...)`` go to the provider of the overstory layer they run in."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link
from opentelemetry.util.types import Attributes

from overstory.hierarchy._layer import Layer
from overstory.telemetry._hooks import current_instrumentation
from overstory.telemetry._otel import OtelInstrumentation, current_scope

__all__ = ["RoutingTracerProvider", "install_global_provider"]


class _RoutingTracer(trace_api.Tracer):
    """A tracer for user code: each span goes to the provider of the overstory layer it
    runs in (a leaf's HTTP call lands in ``{base}.leaf``), or is non-recording outside
    every overstory span when telemetry is not configured."""

    def __init__(
        self,
        name: str,
        version: str | None,
        schema_url: str | None,
        attributes: Attributes,
    ) -> None:
        self._args = (name, version, schema_url, attributes)
        self._tracers: dict[int, tuple[TracerProvider, trace_api.Tracer]] = {}

    def _tracer(self, context: context_api.Context | None) -> trace_api.Tracer | None:
        scope = current_scope(context)
        if scope is None:
            installed = current_instrumentation()
            if not isinstance(installed, OtelInstrumentation):
                return None
            scope = installed._scope(Layer.LEAF)
        provider = scope.provider
        cached = self._tracers.get(id(provider))
        if cached is None or cached[0] is not provider:
            cached = (provider, provider.get_tracer(*self._args))
            self._tracers[id(provider)] = cached
        return cached[1]

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: trace_api.SpanKind = trace_api.SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        tracer = self._tracer(context)
        if tracer is None:
            return trace_api.NonRecordingSpan(
                trace_api.get_current_span(context).get_span_context()
            )
        return tracer.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: trace_api.SpanKind = trace_api.SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class RoutingTracerProvider(trace_api.TracerProvider):
    """The global tracer provider overstory installs when the application set none."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace_api.Tracer:
        return _RoutingTracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )


def install_global_provider() -> bool:
    """Make user code's spans (``trace.get_tracer(...)``) go through overstory's layer
    providers, unless the application already set a global tracer provider. Returns
    whether overstory's router is (now) the global provider."""
    current = trace_api.get_tracer_provider()
    if isinstance(current, RoutingTracerProvider):
        return True
    if not isinstance(current, trace_api.ProxyTracerProvider):
        return False
    trace_api.set_tracer_provider(RoutingTracerProvider())
    return isinstance(trace_api.get_tracer_provider(), RoutingTracerProvider)
