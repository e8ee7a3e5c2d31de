"""Finished spans as plain records, and the JSON-lines file they are exported to.

One line per span::

    {"trace_id": "4bf9…", "span_id": "00f0…", "parent_id": "a3c1…" | null,
     "name": "invoke_agent crm", "service": "agency.leaf", "start": 1700000000123456789,
     "end": 1700000000223456789, "status": "ERROR" | "OK" | "UNSET", "status_message": "…",
     "attributes": {…}, "events": [{"name": "retry", "time": …, "attributes": {…}}],
     "links": [{"trace_id": "…", "span_id": "…", "attributes": {…}}], "resource": {…}}

Times are Unix nanoseconds; ids are lower-case hex. ``overstory trace FILE`` reads it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

import attrs
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["EventRecord", "JsonLinesExporter", "SpanRecord", "load_spans"]


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (attributes or {}).items()}


@attrs.frozen(kw_only=True)
class EventRecord:
    """A span event: a supervision decision, an exception."""

    name: str
    time: int
    attributes: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SpanRecord:
    """One finished span, independent of the SDK: what the waterfall and the file hold."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start: int
    end: int
    status: str = "UNSET"
    status_message: str = ""
    attributes: Mapping[str, Any] = attrs.field(factory=dict)
    events: Sequence[EventRecord] = ()
    links: Sequence[Mapping[str, Any]] = ()
    resource: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return (self.end - self.start) / 1e9

    @classmethod
    def from_span(cls, span: ReadableSpan) -> SpanRecord:
        """The record of an SDK span."""
        context = span.context
        assert context is not None
        resource = _plain(span.resource.attributes)
        return cls(
            trace_id=format(context.trace_id, "032x"),
            span_id=format(context.span_id, "016x"),
            parent_id=format(span.parent.span_id, "016x") if span.parent is not None else None,
            name=span.name,
            service=str(resource.get("service.name", "")),
            start=span.start_time or 0,
            end=span.end_time or 0,
            status=span.status.status_code.name,
            status_message=span.status.description or "",
            attributes=_plain(span.attributes),
            events=tuple(
                EventRecord(name=e.name, time=e.timestamp, attributes=_plain(e.attributes))
                for e in span.events
            ),
            links=tuple(
                {
                    "trace_id": format(link.context.trace_id, "032x"),
                    "span_id": format(link.context.span_id, "016x"),
                    "attributes": _plain(link.attributes),
                }
                for link in span.links
            ),
            resource=resource,
        )

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object of one line of the file."""
        record = attrs.asdict(self, recurse=True)
        record["events"] = [attrs.asdict(e) for e in self.events]
        record["links"] = [dict(link) for link in self.links]
        return record

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpanRecord:
        """Parse one line's object; raises ``ValueError`` naming what is missing."""
        try:
            return cls(
                trace_id=str(data["trace_id"]),
                span_id=str(data["span_id"]),
                parent_id=data.get("parent_id"),
                name=str(data["name"]),
                service=str(data.get("service", "")),
                start=int(data["start"]),
                end=int(data["end"]),
                status=str(data.get("status", "UNSET")),
                status_message=str(data.get("status_message", "")),
                attributes=dict(data.get("attributes") or {}),
                events=tuple(
                    EventRecord(
                        name=str(e["name"]),
                        time=int(e["time"]),
                        attributes=dict(e.get("attributes") or {}),
                    )
                    for e in data.get("events") or ()
                ),
                links=tuple(dict(link) for link in data.get("links") or ()),
                resource=dict(data.get("resource") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a span record: {exc!r}") from None


def load_spans(lines: Iterable[str]) -> list[SpanRecord]:
    """Parse JSON lines (a file object works); blank lines are skipped.

    Raises ``ValueError`` naming the line number of the first line that is not a span.
    """
    records: list[SpanRecord] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(SpanRecord.from_json(json.loads(line)))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return records


class JsonLinesExporter(SpanExporter):
    """Appends one JSON line per finished span to ``path`` (created if missing).

    Each batch is written and flushed at once, so a reader (``overstory trace``) sees
    whole lines. Safe to call from the batch processor's thread.

    With ``max_bytes``, once a batch takes the file to that size or beyond, the file is
    renamed to ``path`` + ``".1"`` (replacing the one before) and a new one is started:
    the spans kept on disk are the newest ``max_bytes`` to ``2 × max_bytes`` (plus a
    batch). Readers should read ``path`` before ``path.1``: a rotation between the two
    opens then shows them one file twice rather than skip one. An ``OSError`` from the
    rename propagates to the SDK's processor, which logs it, and later batches go on in
    the same file; if the file cannot be reopened, later batches report failure.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes!r}")
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(
            json.dumps(SpanRecord.from_span(span).to_json(), default=str) + "\n" for span in spans
        )
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            self._file.write(lines)
            self._file.flush()
            if self.max_bytes is not None and self._file.tell() >= self.max_bytes:
                self._file.close()
                self._file = None
                try:
                    os.replace(self.path, self.path + ".1")
                finally:
                    # After a failed rename too: the next batches go to the same file.
                    self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
