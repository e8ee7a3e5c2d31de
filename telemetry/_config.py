"""``configure()``: build the SDK pipeline once, from arguments and the ``OTEL_*`` variables.

What is read, in order of precedence (argument, then variable, then default):

==================  =============================================  ======================
argument            variable                                       default
==================  =============================================  ======================
``exporter``        ``OTEL_TRACES_EXPORTER`` (otlp/console/none)   ``"otlp"``
``endpoint``        ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT``       the exporter's own
``protocol``        ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``       ``"http/protobuf"``
``headers``         ``OTEL_EXPORTER_OTLP[_TRACES]_HEADERS``        none
``service_name``    ``OTEL_SERVICE_NAME``                          the tree's name
(resource)          ``OTEL_RESOURCE_ATTRIBUTES``                   —
(sampling)          ``OTEL_TRACES_SAMPLER``, ``…_SAMPLER_ARG``      parent-based, always on
(everything)        ``OTEL_SDK_DISABLED=true``: nothing is built   —
==================  =============================================  ======================

The OTLP exporters and the SDK read the variables themselves where they can; we read
the ones only the SDK's auto-configuration would (exporter, protocol, service name).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import attrs
import trio
from opentelemetry import trace as trace_api
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from overstory._errors import ConfigurationError
from overstory.telemetry._hooks import (
    NULL_INSTRUMENTATION,
    Instrumentation,
    current_instrumentation,
    install_instrumentation,
)
from overstory.telemetry._otel import OtelInstrumentation
from overstory.telemetry._records import JsonLinesExporter, SpanRecord
from overstory.telemetry._routing import install_global_provider

__all__ = ["Telemetry", "configure"]

ExporterName = Literal["otlp", "console", "jsonl", "memory", "none"]
_EXPORTERS = ("otlp", "console", "jsonl", "memory", "none")
_PROTOCOLS = ("grpc", "http/protobuf")


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _otlp_exporters(
    protocol: str, endpoint: str | None, headers: Mapping[str, str] | None, metrics: bool
) -> tuple[SpanExporter, Any]:
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError as exc:
            raise ConfigurationError(
                "OTLP over gRPC needs the grpc extra: pip install 'overstory[grpc]'"
            ) from exc
        grpc_headers = dict(headers) if headers is not None else None
        return (
            GrpcSpanExporter(endpoint=endpoint, headers=grpc_headers),
            GrpcMetricExporter(endpoint=endpoint, headers=grpc_headers) if metrics else None,
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    def url(signal: str) -> str | None:
        if endpoint is None:
            return None  # the exporter reads OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT itself
        base = endpoint.rstrip("/")
        return base if base.endswith(f"/v1/{signal}") else f"{base}/v1/{signal}"

    http_headers = dict(headers) if headers is not None else None
    return (
        HttpSpanExporter(endpoint=url("traces"), headers=http_headers),
        HttpMetricExporter(endpoint=url("metrics"), headers=http_headers) if metrics else None,
    )


def _parse_headers(value: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"bad OTLP header {part.strip()!r}: expected key=value")
        headers[key.strip().lower()] = val.strip()
    return headers


class _LogCorrelation:
    """Adds ``otelTraceID``, ``otelSpanID`` and ``otelTraceSampled`` to every log record
    of the ``overstory`` loggers (the names opentelemetry-instrumentation-logging uses), so
    ``%(otelTraceID)s`` works in a format string and handlers can correlate.

    One record factory for the process, installed while at least one pipeline is open
    (``acquire``/``release`` count them), so factories never pile up."""

    _lock = threading.Lock()
    _users = 0
    _previous: Any = None

    @classmethod
    def acquire(cls) -> None:
        with cls._lock:
            cls._users += 1
            if cls._users == 1:
                cls._previous = logging.getLogRecordFactory()
                logging.setLogRecordFactory(cls._make)

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users == 0:
                if logging.getLogRecordFactory() == cls._make:
                    logging.setLogRecordFactory(cls._previous)
                cls._previous = None

    @classmethod
    def _make(cls, *args: Any, **kwargs: Any) -> logging.LogRecord:
        previous = cls._previous or logging.LogRecord
        record: logging.LogRecord = previous(*args, **kwargs)
        if record.name == "overstory" or record.name.startswith("overstory."):
            context = trace_api.get_current_span().get_span_context()
            record.otelTraceID = format(context.trace_id, "032x")
            record.otelSpanID = format(context.span_id, "016x")
            record.otelTraceSampled = context.trace_flags.sampled
        return record


@attrs.define(eq=False)
class Telemetry:
    """A configured telemetry pipeline; made by :func:`configure`.

    ``instrumentation`` is what trees use (installed as the process default unless
    ``configure(install=False)``); it is :data:`NULL_INSTRUMENTATION` when telemetry is
    disabled. Close it to export what is left: ``await telemetry.aclose()`` inside trio
    (the blocking part runs in a worker thread), ``telemetry.close()`` outside it, or use
    it as a ``with`` block.
    """

    instrumentation: Instrumentation
    exporter: SpanExporter | None = None
    processor: SpanProcessor | None = None
    meter_provider: MeterProvider | None = None
    metric_readers: tuple[MetricReader, ...] = ()
    _recorder: InMemorySpanExporter | None = attrs.field(default=None, alias="_recorder")
    _installed: bool = attrs.field(default=False, alias="_installed")
    _logs: bool = attrs.field(default=False, alias="_logs")
    _closed: bool = attrs.field(default=False, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded (``False`` when ``OTEL_SDK_DISABLED=true``)."""
        return self.processor is not None

    def spans(self) -> list[SpanRecord]:
        """The spans finished so far, oldest first, when ``configure(record=True)`` or the
        ``memory`` exporter was chosen; raises ``RuntimeError`` otherwise."""
        if self._recorder is None:
            raise RuntimeError("spans are kept only with configure(record=True) or 'memory'")
        return [SpanRecord.from_span(span) for span in self._recorder.get_finished_spans()]

    def readable_spans(self) -> tuple[ReadableSpan, ...]:
        """Like :meth:`spans`, as the SDK's span objects."""
        if self._recorder is None:
            raise RuntimeError("spans are kept only with configure(record=True) or 'memory'")
        return self._recorder.get_finished_spans()

    # -- flushing and closing ----------------------------------------------------------

    def flush_blocking(self, timeout: float = 30.0) -> bool:
        """Export every finished span now; blocks the calling thread up to ``timeout`` s.
        Returns whether everything was exported in time. Not for the trio thread."""
        ok = True
        millis = int(timeout * 1000)
        if self.processor is not None:
            ok = self.processor.force_flush(millis)
        if self.meter_provider is not None:
            ok = self.meter_provider.force_flush(millis) and ok
        return ok

    async def flush(self, timeout: float = 30.0) -> bool:
        """Export every finished span now, from a worker thread: the trio loop runs on.
        Returns whether everything was exported within ``timeout`` seconds."""
        return await trio.to_thread.run_sync(self.flush_blocking, timeout)

    def close(self) -> None:
        """Export what is left and shut the pipeline down; idempotent. Blocks: outside
        trio only (raises ``RuntimeError`` on the trio thread — use :meth:`aclose`)."""
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            self._close()
        else:
            raise RuntimeError("Telemetry.close() blocks; inside trio use await aclose()")

    async def aclose(self) -> None:
        """Export what is left and shut the pipeline down, from a worker thread;
        idempotent. Shielded: cancelling the caller does not lose the spans."""
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._installed and current_instrumentation() is self.instrumentation:
            install_instrumentation(None)
        if self._logs:
            _LogCorrelation.release()
        if self.processor is not None:
            self.processor.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def configure(
    *,
    exporter: ExporterName | SpanExporter | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    path: str | os.PathLike[str] | None = None,
    service_name: str | None = None,
    per_layer: bool = True,
    metric_readers: Sequence[MetricReader] | None = None,
    record: bool = False,
    install: bool = True,
) -> Telemetry:
    """Build the telemetry pipeline and (by default) make every tree use it.

    ``exporter`` is ``"otlp"`` (to ``endpoint`` over ``protocol``: ``"http/protobuf"``
    or ``"grpc"``), ``"jsonl"`` (one JSON line per span appended to ``path``),
    ``"console"``, ``"memory"`` (kept for :meth:`Telemetry.spans`), ``"none"``, or any
    SDK ``SpanExporter``. Without one: ``"jsonl"`` when ``path`` is given, ``"otlp"``
    when ``endpoint`` is, else ``OTEL_TRACES_EXPORTER``, else ``"otlp"``.

    Each layer reports as its own service ``{base}.strategic`` / ``.tactical`` /
    ``.leaf`` with ``service.namespace={base}``, all through one batch processor and one
    exporter; ``per_layer=False`` uses the single service ``{base}``. ``base`` is
    ``service_name``, else ``OTEL_SERVICE_NAME``, else the running tree's name.

    Metrics go to ``metric_readers`` (default: OTLP metrics next to OTLP traces, none
    otherwise). ``record=True`` also keeps every span in memory for
    :meth:`Telemetry.spans` (``overstory run --trace`` draws them). Spans that user code
    starts with ``opentelemetry.trace.get_tracer()`` inside an agent go to that agent's
    layer service, unless the application has set its own global tracer provider.

    With ``OTEL_SDK_DISABLED=true`` nothing is built and the no-op instrumentation is
    returned. Raises :class:`ConfigurationError` for an unknown exporter or protocol, a
    missing ``path``, a malformed ``OTEL_EXPORTER_OTLP_HEADERS``, or gRPC without its extra.
    """
    if (_env("OTEL_SDK_DISABLED") or "").lower() == "true":
        return Telemetry(instrumentation=NULL_INSTRUMENTATION)
    if exporter is None:
        if path is not None:
            exporter = "jsonl"
        elif endpoint is not None:
            exporter = "otlp"
        else:
            exporter = (_env("OTEL_TRACES_EXPORTER") or "otlp").split(",")[0].strip()  # type: ignore[assignment]
    readers: list[MetricReader] = list(metric_readers or ())
    recorder: InMemorySpanExporter | None = None
    if isinstance(exporter, SpanExporter):
        span_exporter: SpanExporter | None = exporter
    elif exporter == "otlp":
        chosen = protocol or _env(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        chosen = chosen or "http/protobuf"
        if chosen not in _PROTOCOLS:
            raise ConfigurationError(
                f"OTLP protocol must be one of {', '.join(_PROTOCOLS)}, got {chosen!r}"
            )
        env_headers = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
        if headers is None and env_headers is not None:
            headers = _parse_headers(env_headers)
        span_exporter, metric_exporter = _otlp_exporters(
            chosen, endpoint, headers, metrics=metric_readers is None
        )
        if metric_exporter is not None:
            readers.append(PeriodicExportingMetricReader(metric_exporter))
    elif exporter == "jsonl":
        if path is None:
            raise ConfigurationError("the jsonl exporter needs path=")
        span_exporter = JsonLinesExporter(path)
    elif exporter == "console":
        span_exporter = ConsoleSpanExporter()
    elif exporter == "memory":
        span_exporter = recorder = InMemorySpanExporter()
    elif exporter == "none":
        span_exporter = None
    else:
        raise ConfigurationError(
            f"exporter must be one of {', '.join(_EXPORTERS)} or a SpanExporter, got {exporter!r}"
        )
    processor: SpanProcessor
    if span_exporter is None or isinstance(span_exporter, InMemorySpanExporter):
        if recorder is None:
            recorder = InMemorySpanExporter() if record else None
        processor = SimpleSpanProcessor(recorder) if recorder is not None else _NoProcessor()
    else:
        processor = BatchSpanProcessor(span_exporter)
        if record:
            recorder = InMemorySpanExporter()
            processor = _Both(processor, SimpleSpanProcessor(recorder))
    base = service_name or _env("OTEL_SERVICE_NAME")
    meter_provider = None
    if readers:
        # Exemplars (a sampled span id kept per measurement) double the cost of every
        # measurement; overstory's metrics are counts and durations that traces already
        # explain, so they are off unless OTEL_METRICS_EXEMPLAR_FILTER asks for them.
        exemplars = None if _env("OTEL_METRICS_EXEMPLAR_FILTER") else AlwaysOffExemplarFilter()
        meter_provider = MeterProvider(
            metric_readers=readers,
            resource=Resource.create({"service.name": base or "overstory"}),
            shutdown_on_exit=False,
            exemplar_filter=exemplars,
        )
    instrumentation = OtelInstrumentation(
        processor,
        base=base,
        per_layer=per_layer,
        meter=meter_provider.get_meter("overstory") if meter_provider is not None else None,
    )
    install_global_provider()
    telemetry = Telemetry(
        instrumentation=instrumentation,
        exporter=span_exporter,
        processor=processor,
        meter_provider=meter_provider,
        metric_readers=tuple(readers),
        _recorder=recorder,
        _installed=install,
        _logs=True,
    )
    _LogCorrelation.acquire()
    if install:
        install_instrumentation(instrumentation)
    return telemetry


class _NoProcessor(SpanProcessor):
    """Records nothing: the ``none`` exporter (spans still propagate context)."""


class _Both(SpanProcessor):
    """Two processors: the exporting one, and the in-memory one ``record=True`` adds."""

    def __init__(self, first: SpanProcessor, second: SpanProcessor) -> None:
        self._processors = (first, second)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for processor in self._processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self._processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._processors)
