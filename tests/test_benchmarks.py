"""The benchmark programs run: each workload once at a tiny size, in its own process.

Benchmarks are programs, not tests: nothing here looks at a time or a rate.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_suite() -> ModuleType:
    """Import ``benchmarks/_suite.py`` on its own (the package would edit ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(
        "overstory_benchmark_suite", ROOT / "benchmarks" / "_suite.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SMOKE = [
    ("fanout", "trio", "--goals", "3"),
    ("fanout", "overstory", "--goals", "3"),
    ("fanout", "trio", "--goals", "3", "--fail", "0.3", "--workload", "W2"),
    ("fanout", "overstory", "--goals", "3", "--fail", "0.3", "--workload", "W2"),
    ("scale", "trio", "--teams", "3", "--leaves", "4", "--sleep", "0.001"),
    ("scale", "overstory", "--teams", "3", "--leaves", "4", "--sleep", "0.001"),
    ("restart", "trio", "--restarts", "5"),
    ("restart", "overstory", "--restarts", "5"),
    ("restart", "trio-supervisor", "--restarts", "5"),
    ("restart", "trio-supervisor", "--restarts", "5", "--unbounded"),
    ("soak", "overstory", "--goals", "30", "--warmup", "10"),
    ("cycles", "overstory", "--goals", "3", "--fail", "0.3"),
    ("telemetry_cost", "sdk-hooks", "--goals", "5", "--repeat", "1"),
]


def run(module: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("command", SMOKE, ids=[" ".join(c) for c in SMOKE])
def test_workload_runs(command: tuple[str, ...]) -> None:
    """Each workload prints one JSON line naming itself and its system."""
    module, system, *args = command
    result = run(module, system, *args)
    assert result["system"] == system


def test_failure_storm_agrees_with_bare_trio() -> None:
    """The same seeded failure table gives overstory and bare trio the same successes."""
    args = ("--goals", "6", "--fail", "0.3", "--workload", "W2")
    trio_result = run("fanout", "trio", *args)
    overstory_result = run("fanout", "overstory", *args)
    assert trio_result["success_fraction"] == trio_result["expected_success_fraction"]
    assert overstory_result["success_fraction"] == trio_result["success_fraction"]


def test_failed_goals_leave_no_more_in_cycles_than_a_trio_run() -> None:
    """W2 at the full tree shape leaves no goal's state in reference cycles: 3 and 12
    goals leave exactly as many objects as bare trio's run does (its own teardown)."""
    args = ("--fail", "0.3", "--steps", "3", "--leaves", "4")
    floor = run("cycles", "trio", "--goals", "3", *args)["cyclic_objects"]
    few = run("cycles", "overstory", "--goals", "3", *args)
    many = run("cycles", "overstory", "--goals", "12", *args)
    assert few["workload"] == "W2"
    assert few["cyclic_objects"] == many["cyclic_objects"] == floor


def test_tracing_sides_export_the_same_spans() -> None:
    """W4's raw-SDK loop makes as many spans per goal as overstory with tracing on."""
    args = ("--goals", "4", "--repeat", "1")
    sdk = run("telemetry_cost", "sdk", *args)
    overstory = run("telemetry_cost", "overstory", *args)
    assert (sdk["system"], overstory["system"]) == ("sdk", "overstory")
    assert sdk["spans_per_goal"] == overstory["spans_per_goal"] == 11


def test_w4_sides_make_the_same_spans_on_w1s_shape() -> None:
    """W4's bare-trio side makes as many spans per goal as overstory running W1 traced."""
    args = ("--goals", "3", "--steps", "2", "--leaves", "3", "--repeat", "1")
    sdk = run("tracing", "sdk", *args)
    overstory = run("tracing", "overstory", *args)
    assert (sdk["workload"], overstory["workload"]) == ("W4", "W4")
    # The goal, the strategic supervisor, and per step a team span and one per leaf call.
    assert sdk["spans_per_goal"] == overstory["spans_per_goal"] == 2 + 2 * (1 + 3)


def test_w4_refuses_failures() -> None:
    """W4 is W1 without failures: asking for a failure rate is an error, not a silent W2."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.tracing", "sdk", "--fail", "0.1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "--fail must be 0" in done.stderr


def test_tracing_benchmark_alone_prints_every_side() -> None:
    """Without a system the tracing benchmark measures every side, one JSON line per figure."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.telemetry_cost", "--goals", "4", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    sides = {line["side"] for line in lines if line["measure"] == "cost_per_span_us"}
    assert sides == {"overstory", "overstory_with_metrics", "raw_sdk_hooks", "raw_sdk_loop"}
    assert sum(1 for line in lines if line["measure"] == "ratio") == 4


@pytest.mark.parametrize(
    ("figure", "ratios", "values", "text", "met"),
    [
        ({"target": 0.5}, [0.4, 0.6, 0.7], [], "≥ 0.5× met", True),
        ({"target": 1.3, "higher": False}, [1.2, 1.4, 1.5], [], "≤ 1.3× NOT met", False),
        ({"limit": 1000, "unit": "/s"}, [], [900.0, 1000.0], "≥ 1,000/s NOT met", False),
        ({"limit": 1000, "unit": "/s"}, [], [1000.0], "≥ 1,000/s met", True),
        (
            {"limit": 25, "strict": True, "unit": " ms", "higher": False},
            [],
            [25.0],
            "< 25 ms NOT met",
            False,
        ),
        (
            {"limit": 25, "strict": True, "unit": " ms", "higher": False},
            [],
            [],
            "< 25 ms NOT met",
            False,
        ),
        ({}, [2.0], [3.0], "", None),
    ],
)
def test_targets_are_judged_on_the_median(
    figure: dict[str, Any], ratios: list[float], values: list[float], text: str, met: bool | None
) -> None:
    """A ratio or absolute target is met or not by the median of the runs (none: no verdict)."""
    higher = figure.pop("higher", True)
    made = load_suite().Figure("x", "x", higher, **figure)
    assert made.target_text(ratios, values) == (text, met)


def test_suite_quick_run(tmp_path: Path) -> None:
    """The runner aggregates one quick run into a table and a README section."""
    readme = tmp_path / "README.md"
    readme.write_text("# project\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--runs",
            "1",
            "--workloads",
            "W1,W5",
            "--systems",
            "trio,overstory",
            "--readme",
            str(readme),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert "## Performance" in text
    assert "| W1 | leaf calls/s |" in text
    assert "| W5 | µs per restart |" in text


def test_suite_quick_run_of_tracing_and_daemon(tmp_path: Path) -> None:
    """W4 is divided by the raw SDK and W6 is held to absolute targets, both in the table."""
    readme = tmp_path / "README.md"
    readme.write_text("# project\n")
    results = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            *("--quick", "--runs", "1", "--workloads", "W4,W6"),
            *("--readme", str(readme), "--json", str(results)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert "| W4 | µs per span | raw SDK |" in text
    assert "| W4 | spans per goal | raw SDK | 112 | 112 | 1.00× |" in text
    assert "| W6 | durable accepts/s |" in text
    summary = json.loads(results.read_text())["summary"]
    assert summary["W4 errors"] == summary["W6 errors"] == []
    assert summary["W4 us_per_span"]["target"]["text"].startswith("≤ 1.3× ")
    assert summary["W6 accepts_per_s"]["target"]["text"].startswith("≥ 1,000/s ")
    assert summary["W6 accept_p99_ms"]["target"]["text"].startswith("< 25 ms ")
