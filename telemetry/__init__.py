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

import typing as _typing

from overstory._lazy import lazy_names as _lazy_names
from overstory.telemetry._hooks import NULL_INSTRUMENTATION as NULL_INSTRUMENTATION
from overstory.telemetry._hooks import Instrumentation as Instrumentation
from overstory.telemetry._hooks import SpanHook as SpanHook
from overstory.telemetry._hooks import current_instrumentation as current_instrumentation
from overstory.telemetry._hooks import install_instrumentation as install_instrumentation

if _typing.TYPE_CHECKING:
    from overstory.telemetry._config import Telemetry as Telemetry
    from overstory.telemetry._config import configure as configure
    from overstory.telemetry._records import EventRecord as EventRecord
    from overstory.telemetry._records import JsonLinesExporter as JsonLinesExporter
    from overstory.telemetry._records import SpanRecord as SpanRecord
    from overstory.telemetry._records import load_spans as load_spans
    from overstory.telemetry._tool import tool as tool
    from overstory.telemetry._waterfall import render_waterfall as render_waterfall

_LAZY = {
    "Telemetry": "overstory.telemetry._config",
    "configure": "overstory.telemetry._config",
    "EventRecord": "overstory.telemetry._records",
    "JsonLinesExporter": "overstory.telemetry._records",
    "SpanRecord": "overstory.telemetry._records",
    "load_spans": "overstory.telemetry._records",
    "tool": "overstory.telemetry._tool",
    "render_waterfall": "overstory.telemetry._waterfall",
}

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


# Imported on first use: the OpenTelemetry SDK and exporters are
# tens of thousands of objects that a tree running without telemetry never needs, and
# every full garbage collection would walk them.
__getattr__, __dir__ = _lazy_names(globals(), _LAZY, __all__)
