"""configure(): exporters, OTEL_* variables, metrics, log correlation, closing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio
import trio.testing
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from telemetry_helpers import NO_WAIT, memory_telemetry, metric_points

import overstory as ov


@ov.leaf
async def flaky(task: ov.Task, ctx: ov.Context) -> str:
    if ctx.attempt == 1:
        raise ValueError("once")
    return "ok"


def small_tree() -> ov.Tree:
    return ov.Tree(
        "agency",
        ov.Strategic(
            "director",
            children=[ov.Tactical("sales", children=[flaky], retry=ov.Retry(backoff=NO_WAIT))],
        ),
    )


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
    ):
        monkeypatch.delenv(name, raising=False)


def test_without_configure_the_hooks_are_the_shared_no_op() -> None:
    """Unconfigured, trees use NULL_INSTRUMENTATION: no provider, processor or exporter."""
    assert ov.telemetry.current_instrumentation() is ov.telemetry.NULL_INSTRUMENTATION
    hook = ov.telemetry.NULL_INSTRUMENTATION.plan(name="a", path="t/a", goal_id="g")
    with hook as span:
        span.add_event("retry", {})


def test_sdk_disabled_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: configure() returns the no-op instrumentation and installs
    nothing."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry = ov.telemetry.configure(endpoint="http://127.0.0.1:9")
    assert telemetry.instrumentation is ov.telemetry.NULL_INSTRUMENTATION
    assert not telemetry.enabled
    assert ov.telemetry.current_instrumentation() is ov.telemetry.NULL_INSTRUMENTATION
    telemetry.close()


def test_configure_installs_and_close_uninstalls() -> None:
    """configure() makes its instrumentation the default; close() puts the no-op back."""
    with ov.telemetry.configure(exporter="memory") as telemetry:
        assert ov.telemetry.current_instrumentation() is telemetry.instrumentation
    assert ov.telemetry.current_instrumentation() is ov.telemetry.NULL_INSTRUMENTATION


@pytest.mark.parametrize(
    ("protocol", "variable", "kind"),
    [
        (None, None, HttpSpanExporter),
        ("grpc", None, GrpcSpanExporter),
        (None, "grpc", GrpcSpanExporter),
        (None, "http/protobuf", HttpSpanExporter),
    ],
)
def test_otlp_protocol_from_argument_or_variable(
    monkeypatch: pytest.MonkeyPatch,
    protocol: str | None,
    variable: str | None,
    kind: type,
) -> None:
    """The OTLP exporter speaks protocol=, else OTEL_EXPORTER_OTLP_PROTOCOL, else
    http/protobuf."""
    if variable is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", variable)
    telemetry = ov.telemetry.configure(
        endpoint="http://127.0.0.1:9", protocol=protocol, install=False, metric_readers=()
    )
    try:
        assert type(telemetry.exporter) is kind
    finally:
        telemetry.close()


def test_bad_protocol_exporter_and_headers_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unknown protocols and exporters, a jsonl exporter without a path and malformed
    OTEL_EXPORTER_OTLP_HEADERS raise ConfigurationError."""
    with pytest.raises(ov.ConfigurationError, match="http/json"):
        ov.telemetry.configure(protocol="http/json", endpoint="http://x", install=False)
    with pytest.raises(ov.ConfigurationError, match="exporter must be one of"):
        ov.telemetry.configure(exporter="zipkin", install=False)  # type: ignore[arg-type]
    with pytest.raises(ov.ConfigurationError, match="path="):
        ov.telemetry.configure(exporter="jsonl", install=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "novalue")
    with pytest.raises(ov.ConfigurationError, match="novalue"):
        ov.telemetry.configure(exporter="otlp", install=False)


def test_sampler_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_TRACES_SAMPLER=always_off records no span, and the goal still runs."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    telemetry, _ = memory_telemetry()
    outcome = trio.run(
        lambda: small_tree().run("go", instrumentation=telemetry.instrumentation),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert outcome.ok
    assert telemetry.spans() == []


def test_resource_variables_reach_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SERVICE_NAME is the base of the services; OTEL_RESOURCE_ATTRIBUTES are kept."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    telemetry, _ = memory_telemetry()
    trio.run(
        lambda: small_tree().run("go", instrumentation=telemetry.instrumentation),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    spans = telemetry.spans()
    assert {s.service for s in spans} == {"shop.strategic", "shop.tactical", "shop.leaf"}
    assert {s.resource["deployment.environment"] for s in spans} == {"test"}


async def test_metrics_count_goals_attempts_and_supervision(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Metrics: goals by status, attempts by layer and outcome, retries, and durations."""
    telemetry, reader = memory_telemetry()
    outcome = await small_tree().run("go", instrumentation=telemetry.instrumentation)
    assert outcome.ok
    assert metric_points(reader, "overstory.goals") == [
        ({"overstory.tree": "agency", "overstory.goal.status": "succeeded"}, 1.0)
    ]
    attempts = {
        (a["overstory.layer"], a["overstory.outcome"]): v
        for a, v in metric_points(reader, "overstory.attempts")
    }
    assert attempts == {
        ("strategic", "succeeded"): 1.0,
        ("tactical", "succeeded"): 1.0,
        ("leaf", "failed"): 1.0,
        ("leaf", "succeeded"): 1.0,
    }
    assert metric_points(reader, "overstory.retries") == [
        ({"overstory.path": "agency/director/sales"}, 1.0)
    ]
    assert sum(v for _, v in metric_points(reader, "overstory.attempt.duration")) == 4.0
    assert sum(v for _, v in metric_points(reader, "overstory.goal.duration")) == 1.0


async def test_log_records_carry_the_trace_and_span_ids(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A log record from an overstory logger inside a span carries its trace and span ids."""
    telemetry, _ = memory_telemetry()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("overstory.test")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    @ov.leaf
    async def talks(task: ov.Task, ctx: ov.Context) -> str:
        logger.info("working")
        return "ok"

    try:
        tree = ov.Tree("agency", ov.Tactical("sales", children=[talks]))
        await tree.run("go", instrumentation=telemetry.instrumentation)
    finally:
        logger.removeHandler(handler)
        await telemetry.aclose()
    (record,) = seen
    leaf = next(s for s in telemetry.spans() if s.name == "invoke_agent talks")
    assert record.otelTraceID == leaf.trace_id  # type: ignore[attr-defined]
    assert record.otelSpanID == leaf.span_id  # type: ignore[attr-defined]
    assert record.otelTraceSampled is True  # type: ignore[attr-defined]


async def test_jsonl_exporter_writes_one_record_per_line(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The jsonl exporter appends one JSON object per span; load_spans reads them back."""
    path = tmp_path / "spans.jsonl"
    telemetry = ov.telemetry.configure(path=path, install=False, metric_readers=())
    await small_tree().run("go", instrumentation=telemetry.instrumentation)
    await telemetry.aclose()
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    first = json.loads(lines[0])
    assert set(first) == {
        "trace_id", "span_id", "parent_id", "name", "service", "start", "end", "status",
        "status_message", "attributes", "events", "links", "resource",
    }  # fmt: skip
    with path.open() as file:
        records = ov.telemetry.load_spans(file)
    assert {r.name for r in records} == {
        "invoke_workflow agency",
        "invoke_agent director",
        "invoke_agent sales",
        "invoke_agent flaky",
    }
    with pytest.raises(ValueError, match="line 2"):
        ov.telemetry.load_spans([lines[0], '{"name": "x"}'])


async def test_close_blocks_so_inside_trio_it_refuses() -> None:
    """close() inside trio raises RuntimeError (it would block the loop); aclose() works
    and is idempotent."""
    telemetry = ov.telemetry.configure(exporter="memory", install=False)
    with pytest.raises(RuntimeError, match="aclose"):
        telemetry.close()
    await telemetry.aclose()
    await telemetry.aclose()
    assert await telemetry.flush()


async def test_record_keeps_spans_next_to_the_exporter(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """record=True keeps every span in memory as well as exporting it."""
    path = tmp_path / "spans.jsonl"
    telemetry = ov.telemetry.configure(path=path, record=True, install=False, metric_readers=())
    await small_tree().run("go", instrumentation=telemetry.instrumentation)
    await telemetry.aclose()
    assert len(telemetry.spans()) == len(path.read_text().splitlines()) == 5
    with pytest.raises(RuntimeError, match="record=True"):
        ov.telemetry.configure(exporter="none", install=False).spans()
