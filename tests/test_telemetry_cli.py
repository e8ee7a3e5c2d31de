"""The command line's telemetry: ``run --trace``, ``run --trace-file``, ``trace FILE``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import overstory as ov
from overstory._cli import main

TREE = """\
import overstory as ov


@ov.leaf
async def crm(task, ctx):
    if ctx.attempt == 1:
        raise ValueError("crm down")
    return "lead"


tree = ov.Tree(
    "agency",
    ov.Strategic(
        "director",
        children=[
            ov.Tactical(
                "sales",
                children=[crm],
                retry=ov.Retry(backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0)),
            )
        ],
    ),
)
"""


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "agency.py"
    path.write_text(textwrap.dedent(TREE))
    return f"{path}:tree"


def test_run_without_telemetry_flags_builds_no_pipeline(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without flags or OTEL_* export variables, run installs no instrumentation."""
    assert main(["run", target, "go"]) == 0
    assert ov.telemetry.current_instrumentation() is ov.telemetry.NULL_INSTRUMENTATION
    assert "invoke_workflow" not in capsys.readouterr().out


@pytest.mark.parametrize("exporter", ["console", "none"])
def test_run_uses_the_exporter_otel_traces_exporter_names(target: str, exporter: str) -> None:
    """OTEL_TRACES_EXPORTER=console prints the spans and =none exports nothing, as
    configure() does from Python: neither tries OTLP."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OTEL_") and name != "PYTHONWARNINGS"
    }
    done = subprocess.run(
        [sys.executable, "-m", "overstory", "run", target, "go"],
        env={**env, "OTEL_TRACES_EXPORTER": exporter},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = '"name": "invoke_workflow agency"' in done.stdout
    assert printed is (exporter == "console")
    assert "4318" not in done.stderr


def test_run_trace_draws_the_goal_after_the_outcome(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """run --trace prints the goal's waterfall after the outcome, retry event included,
    and uninstalls the instrumentation when it is done."""
    assert main(["run", target, "go", "--trace"]) == 0
    out = capsys.readouterr().out
    waterfall = out[out.index("trace ") :]
    lines = waterfall.splitlines()
    assert " · agency · goal " in lines[0]
    assert [line.split()[0] for line in lines[1:3]] == ["strategic", "strategic"]
    assert "invoke_workflow agency" in lines[1]
    assert any("invoke_agent crm #1" in line and "error ValueError" in line for line in lines)
    assert any(" retry " in line and "attempt=1" in line for line in lines)
    assert ov.telemetry.current_instrumentation() is ov.telemetry.NULL_INSTRUMENTATION


def test_run_json_trace_goes_to_stderr(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    """With --json the outcome stays alone on stdout and the waterfall goes to stderr."""
    assert main(["run", target, "go", "--json", "--trace"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "succeeded"
    assert "invoke_workflow agency" in captured.err


def test_trace_file_then_trace_command(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """run --trace-file writes every span before exiting; `overstory trace FILE` draws
    them, --trace-id keeps one trace, and a trace that is not there exits 1."""
    spans = tmp_path / "spans.jsonl"
    assert main(["run", target, "go", "--trace-file", str(spans), "--service-name", "shop"]) == 0
    assert main(["run", target, "again", "--trace-file", str(spans)]) == 0
    records = [json.loads(line) for line in spans.read_text().splitlines()]
    assert len(records) == 10
    assert {r["service"] for r in records[:5]} == {"shop.strategic", "shop.tactical", "shop.leaf"}
    capsys.readouterr()
    assert main(["trace", str(spans), "--width", "100"]) == 0
    drawn = capsys.readouterr().out
    assert drawn.count("invoke_workflow agency") == 2
    first = records[0]["trace_id"]
    assert main(["trace", str(spans), "--trace-id", first, "--no-events"]) == 0
    one = capsys.readouterr().out
    assert one.count("invoke_workflow agency") == 1
    assert "retry" not in one
    assert main(["trace", str(spans), "--trace-id", "0" * 32]) == 1
    assert "no trace" in capsys.readouterr().err


def test_trace_rejects_missing_and_malformed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """trace exits 2 naming the file when it cannot be read or holds no span records."""
    assert main(["trace", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "x"}\n')
    assert main(["trace", str(bad)]) == 2
    assert "line 1" in capsys.readouterr().err
