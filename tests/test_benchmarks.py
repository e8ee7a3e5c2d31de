"""The benchmark programs run: each workload once at a tiny size, in its own process.

Benchmarks are programs, not tests: nothing here looks at a time or a rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE = [
    ("fanout", "trio", "--goals", "3"),
    ("fanout", "overstory", "--goals", "3"),
    ("fanout", "trio", "--goals", "3", "--fail", "0.3", "--workload", "W2"),
    ("fanout", "overstory", "--goals", "3", "--fail", "0.3", "--workload", "W2"),
    ("scale", "trio", "--teams", "3", "--leaves", "4", "--sleep", "0.001"),
    ("scale", "overstory", "--teams", "3", "--leaves", "4", "--sleep", "0.001"),
    ("restart", "trio", "--restarts", "5"),
    ("restart", "overstory", "--restarts", "5"),
    ("soak", "overstory", "--goals", "30", "--warmup", "10"),
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
