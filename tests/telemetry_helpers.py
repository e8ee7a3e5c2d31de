"""Shared by the telemetry tests: an in-memory pipeline and questions about its spans."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import overstory as ov
from overstory.telemetry import SpanRecord

NO_WAIT = ov.Backoff(initial=0.01, cap=0.01, jitter=0.0)


def memory_telemetry(**options: object) -> tuple[ov.telemetry.Telemetry, InMemoryMetricReader]:
    """A pipeline that keeps spans in memory and metrics in a reader; not installed."""
    reader = InMemoryMetricReader()
    telemetry = ov.telemetry.configure(
        exporter="memory", install=False, metric_readers=[reader], **options
    )
    return telemetry, reader


def named(spans: Iterable[SpanRecord], name: str) -> list[SpanRecord]:
    """The spans called ``name``, oldest first."""
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start)


def one(spans: Iterable[SpanRecord], name: str) -> SpanRecord:
    found = named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r}"
    return found[0]


def parent(spans: Iterable[SpanRecord], span: SpanRecord) -> SpanRecord | None:
    by_id = {s.span_id: s for s in spans}
    return by_id.get(span.parent_id) if span.parent_id is not None else None


def events(span: SpanRecord, name: str) -> list[dict[str, object]]:
    """The attributes of ``span``'s events called ``name``."""
    return [dict(e.attributes) for e in span.events if e.name == name]


def metric_points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, object], float]]:
    """(attributes, value) of every data point of metric ``name`` (sum or histogram count)."""
    data = reader.get_metrics_data()
    points: list[tuple[dict[str, object], float]] = []
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # type: ignore[union-attr]
                    points.append((dict(point.attributes or {}), float(value)))
    return points
