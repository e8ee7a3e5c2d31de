"""Telemetry: the instrumentation hooks the runtime calls.

With nothing configured, every hook is a shared no-op and no SDK pipeline exists.
"""

from overstory.telemetry._hooks import NULL_INSTRUMENTATION as NULL_INSTRUMENTATION
from overstory.telemetry._hooks import Instrumentation as Instrumentation
from overstory.telemetry._hooks import SpanHook as SpanHook
from overstory.telemetry._hooks import current_instrumentation as current_instrumentation
from overstory.telemetry._hooks import install_instrumentation as install_instrumentation

__all__ = [
    "NULL_INSTRUMENTATION",
    "Instrumentation",
    "SpanHook",
    "current_instrumentation",
    "install_instrumentation",
]
