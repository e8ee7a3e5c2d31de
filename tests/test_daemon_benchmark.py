"""The daemon benchmark runs end to end at a tiny size (it measures nothing here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _run(module: str, *args: str) -> list[dict[str, Any]]:
    """Run ``python -m module args...``; its stdout's JSON lines, once it exited 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_daemon_benchmark_prints_one_line_per_measurement() -> None:
    """Three JSON lines: the HTTP floor, durable accepts and end-to-end goals, all 2xx."""
    lines = _run(
        "benchmarks.daemon",
        *("--floor", "20", "--accepts", "20", "--goals", "10", "--connections", "2"),
    )
    assert [line["measure"] for line in lines] == [
        "http_floor",
        "durable_accepts",
        "end_to_end_goals",
    ]
    assert lines[0]["statuses"] == {"200": 20}
    assert lines[1]["statuses"] == {"202": 20}
    assert lines[2]["all_succeeded"] is True


def test_the_daemon_soak_prints_one_line_once_every_goal_succeeded() -> None:
    """One JSON line with the three memory readings (the program exits non-zero unless every
    goal was accepted and succeeded)."""
    (line,) = _run(
        "benchmarks.daemon_soak",
        "overstory",
        *("--goals", "60", "--warmup", "20", "--batch", "20", "--retention", "1s"),
    )
    assert (line["workload"], line["goals"]) == ("soak-daemon", 60)
    assert all(line[f"rss_{when}_mb"] > 0 for when in ("start", "half", "end"))
