"""Telemetry: OpenTelemetry traces and metrics of what a tree did, one trace per goal.

Nothing is built until :func:`configure` is called; until then every hook the runtime
calls is a shared no-op. ``configure()`` builds one span processor and exporter, one
tracer provider per layer (``{base}.strategic``, ``{base}.tactical``, ``{base}.leaf``),
and installs the instrumentation every tree then uses::

    telemetry = ov.telemetry.configure(endpoint="http://localhost:4318")
    try:
        trio.run(tree.run, "Qualify lead ACME")
    finally:
        telemetry.close()  # exports what is left

:func:`tool` records tool calls in agent code; :func:`render_waterfall` draws traces in
the terminal from :class:`SpanRecord` (a JSON-lines export: :func:`load_spans`).
"""

from overstory.telemetry._config import Telemetry as Telemetry
from overstory.telemetry._config import configure as configure
from overstory.telemetry._hooks import NULL_INSTRUMENTATION as NULL_INSTRUMENTATION
from overstory.telemetry._hooks import Instrumentation as Instrumentation
from overstory.telemetry._hooks import SpanHook as SpanHook
from overstory.telemetry._hooks import current_instrumentation as current_instrumentation
from overstory.telemetry._hooks import install_instrumentation as install_instrumentation
from overstory.telemetry._records import EventRecord as EventRecord
from overstory.telemetry._records import JsonLinesExporter as JsonLinesExporter
from overstory.telemetry._records import SpanRecord as SpanRecord
from overstory.telemetry._records import load_spans as load_spans
from overstory.telemetry._tool import tool as tool
from overstory.telemetry._waterfall import render_waterfall as render_waterfall

__all__ = [
    "NULL_INSTRUMENTATION",
    "EventRecord",
    "Instrumentation",
    "JsonLinesExporter",
    "SpanHook",
    "SpanRecord",
    "Telemetry",
    "configure",
    "current_instrumentation",
    "install_instrumentation",
    "load_spans",
    "render_waterfall",
    "tool",
]
