"""The daemon benchmark runs end to end at a tiny size (it measures nothing here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_daemon_benchmark_prints_one_line_per_measurement() -> None:
    """Three JSON lines: the HTTP floor, durable accepts and end-to-end goals, all 2xx."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.daemon",
            *("--floor", "20", "--accepts", "20", "--goals", "10", "--connections", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["measure"] for line in lines] == [
        "http_floor",
        "durable_accepts",
        "end_to_end_goals",
    ]
    assert lines[0]["statuses"] == {"200": 20}
    assert lines[1]["statuses"] == {"202": 20}
    assert lines[2]["all_succeeded"] is True


def test_the_daemon_soak_runs_every_goal_and_expires_them() -> None:
    """One JSON line: every goal accepted and succeeded (else it exits non-zero), and
    with a retention shorter than the run, finished goals were deleted meanwhile."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.daemon_soak",
            "overstory",
            *("--goals", "60", "--warmup", "20", "--batch", "20", "--retention", "1s"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(text) for text in done.stdout.splitlines()]
    assert (line["workload"], line["goals"]) == ("soak-daemon", 60)
    assert line["rss_start_mb"] > 0
    assert line["rss_end_mb"] > 0
