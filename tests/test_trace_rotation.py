"""Spans files rotate at a size limit, and the daemon reads a goal's spans across the
rotation: ``serve --trace`` keeps at most about twice ``--trace-limit`` on disk."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from overstory.daemon._cli import mebibytes
from overstory.daemon._config import DEFAULT_TRACE_LIMIT, Config
from overstory.daemon._service import _spans_of
from overstory.telemetry import JsonLinesExporter


def _names(path: Path) -> list[str]:
    return [json.loads(line)["name"] for line in path.read_text().splitlines()]


def test_the_exporter_rotates_the_file_once_it_reaches_max_bytes(tmp_path: Path) -> None:
    """Once a batch takes the file to max_bytes it becomes path.1 (replacing the one
    before) and a new file starts: the newest spans are kept, in order, in two files."""
    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesExporter(path, max_bytes=1000)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # one span per batch
    tracer = provider.get_tracer("test")
    for number in range(30):
        with tracer.start_as_current_span(f"span {number}"):
            pass
    provider.shutdown()
    rotated = path.with_name("spans.jsonl.1")
    # Rotated by the batch (here one line) that took it to 1000 bytes or beyond.
    longest = max(len(line) + 1 for line in rotated.read_text().splitlines())
    assert 1000 <= rotated.stat().st_size < 1000 + longest
    assert path.stat().st_size < 1000
    kept = _names(rotated) + _names(path)
    assert kept == [f"span {n}" for n in range(30 - len(kept), 30)]
    assert len(kept) < 30  # the oldest went with the file rotated before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spans.jsonl", "spans.jsonl.1"]


def test_the_exporter_refuses_a_limit_below_one_byte(tmp_path: Path) -> None:
    """max_bytes=0 is refused at construction, naming the parameter."""
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        JsonLinesExporter(tmp_path / "spans.jsonl", max_bytes=0)


def _span(trace: str, span: str, goal: str | None = None) -> str:
    attributes: dict[str, Any] = {} if goal is None else {"gen_ai.conversation.id": goal}
    record = {"trace_id": trace, "span_id": span, "name": f"{trace}/{span}"}
    return json.dumps(record | {"attributes": attributes}) + "\n"


def test_a_goals_spans_are_read_from_both_files_each_once(tmp_path: Path) -> None:
    """A goal whose trace began before the rotation gets its spans from traces.jsonl.1
    and traces.jsonl; a span in both files (a rotation between the two opens) comes
    once; other goals' traces and a line still being written are left out."""
    path = tmp_path / "traces.jsonl"
    path.with_name("traces.jsonl.1").write_text(
        _span("t1", "root", goal="g1") + _span("t2", "root", goal="g2") + _span("t1", "a")
    )
    path.write_text(_span("t1", "a") + _span("t1", "b") + _span("t2", "c") + _span("t1", "d")[:-9])
    assert sorted(s["name"] for s in _spans_of(path, "g1")) == ["t1/a", "t1/b", "t1/root"]
    assert sorted(s["name"] for s in _spans_of(path, "g2")) == ["t2/c", "t2/root"]
    assert _spans_of(path, "g3") == []
    assert _spans_of(tmp_path / "missing.jsonl", "g1") == []


def test_trace_limit_is_mebibytes_and_at_least_a_kibibyte(tmp_path: Path) -> None:
    """--trace-limit reads MiB as bytes and refuses what is not a positive number or
    comes to less than 1 KiB; Config defaults to 64 MiB and refuses a limit under 1024
    bytes."""
    assert mebibytes("64") == DEFAULT_TRACE_LIMIT == 64 * 2**20
    assert mebibytes("0.5") == 2**19
    for bad in ("", "0", "-1", "inf", "nan", "64MB"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive number of MiB"):
            mebibytes(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"at least 1/1024 MiB \(1 KiB\)"):
        mebibytes("0.0001")
    assert Config(state_dir=tmp_path).trace_limit == DEFAULT_TRACE_LIMIT
    with pytest.raises(ValueError, match="trace_limit must be a whole number at least 1024"):
        Config(state_dir=tmp_path, trace_limit=100)
