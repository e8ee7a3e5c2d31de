"""The suite runner: fresh process per measurement, several runs, pair-by-pair ratios.

Every measurement is ``python -m benchmarks.MODULE SYSTEM ARGS...`` in a new process,
which prints one JSON line. Within one run the systems of a workload are measured
back to back (their order alternates between runs), so a ratio compares two
measurements taken under the same machine load; the suite reports the median and the
range of the per-run figures and of the per-run ratios.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START_MARK = "<!-- benchmarks:start -->"
END_MARK = "<!-- benchmarks:end -->"


@dataclass(frozen=True)
class Figure:
    """One reported number: ``key`` in the JSON line, and how to compare it."""

    key: str
    label: str
    higher_is_better: bool
    target: float | None = None  # the ratio to bare trio the issue asks for
    digits: int = 0


@dataclass(frozen=True)
class Workload:
    name: str
    module: str
    title: str
    systems: tuple[str, ...]
    figures: tuple[Figure, ...]
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    baseline: str | None = "trio"
    requires: tuple[str, ...] = ()  # importable modules the workload needs
    notes: tuple[str, ...] = field(default=())


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "W1",
            "fanout",
            "fan-out: 500 goals × 10 steps × 10 leaf calls, 10 goals in flight",
            ("trio", "overstory", "langgraph"),
            (
                Figure("leaf_calls_per_s", "leaf calls/s", True, 0.5),
                Figure("peak_rss_mb", "peak RSS MiB", False, None, 1),
            ),
            quick=("--goals", "4"),
        ),
        Workload(
            "W2",
            "fanout",
            "failure storm: W1, each leaf attempt fails with p=0.1 (seeded), 3 attempts",
            ("trio", "overstory", "langgraph"),
            (
                Figure("goals_per_s", "goals/s", True, 0.5, 1),
                Figure("success_fraction", "goals succeeded", True, None, 3),
            ),
            args=("--fail", "0.1", "--workload", "W2"),
            quick=("--goals", "4"),
        ),
        Workload(
            "W3",
            "scale",
            "scale: 1,000 tactical × 100 leaf calls sleeping 1 s, all concurrent",
            # LangGraph's full-size run did not finish within 7 minutes on the 2-core
            # machine (100,000 Send tasks in one superstep): measure it on its own with
            # ``python -m benchmarks.scale langgraph [--teams N]``.
            ("trio", "overstory"),
            (
                Figure("seconds", "wall s", False, 1.5, 2),
                Figure("peak_rss_mb", "peak RSS MiB", False, 1.5),
            ),
            quick=("--teams", "5", "--leaves", "5", "--sleep", "0.01"),
        ),
        Workload(
            "W5",
            "restart",
            "restart: an agent crashing on every task, 5,000 restarts",
            ("trio", "overstory"),
            (Figure("us_per_restart", "µs per restart", False, 2.0, 1),),
            quick=("--restarts", "20"),
        ),
        Workload(
            "soak",
            "soak",
            "soak: 50,000 goals through one runner (2 steps × 2 leaf calls each)",
            ("overstory",),
            (
                Figure("goals_per_s", "goals/s", True),
                Figure("rss_start_mb", "RSS after warm-up MiB", False, None, 1),
                Figure("rss_end_mb", "RSS at the end MiB", False, None, 1),
                Figure("object_growth", "GC-tracked objects gained", False),
            ),
            quick=("--goals", "200", "--warmup", "50"),
            baseline=None,
        ),
    )
}

SYSTEM_NAMES = {"trio": "bare trio", "overstory": "overstory", "langgraph": "LangGraph"}


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def measure(workload: Workload, system: str, quick: bool) -> dict[str, Any]:
    """Run one measurement in a fresh process; return its JSON line (or the error)."""
    command = [
        sys.executable,
        "-m",
        f"benchmarks.{workload.module}",
        system,
        *workload.args,
        *(workload.quick if quick else ()),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def systems_for(workload: Workload, wanted: Sequence[str]) -> list[str]:
    chosen = [s for s in workload.systems if s in wanted]
    if "langgraph" in chosen and not available("langgraph"):
        chosen.remove("langgraph")
    return chosen


def run_suite(
    names: Sequence[str], runs: int, systems: Sequence[str], quick: bool, log: Any
) -> dict[str, list[dict[str, dict[str, Any]]]]:
    """``{workload: [ {system: result} per run ]}``."""
    results: dict[str, list[dict[str, dict[str, Any]]]] = {name: [] for name in names}
    for run in range(runs):
        for name in names:
            workload = WORKLOADS[name]
            order = systems_for(workload, systems)
            if run % 2:
                order.reverse()
            measured: dict[str, dict[str, Any]] = {}
            for system in order:
                started = time.perf_counter()
                measured[system] = measure(workload, system, quick)
                took = time.perf_counter() - started
                status = measured[system].get("error", "ok")
                print(f"run {run + 1}/{runs} {name} {system}: {status} ({took:.1f} s)", file=log)
            results[name].append(measured)
    return results


def _spread(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    fmt = f"{{:,.{digits}f}}"
    median = fmt.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _ratio_text(values: list[float]) -> str:
    if not values:
        return "–"
    median = f"{statistics.median(values):.2f}×"
    if len(values) == 1:
        return median
    return f"{median} ({min(values):.2f}–{max(values):.2f})"


def summarise(
    results: dict[str, list[dict[str, dict[str, Any]]]], systems: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """A markdown table and the same figures as data."""
    shown = [s for s in ("trio", "overstory", "langgraph") if s in systems]
    header = [
        "workload",
        "figure",
        *(SYSTEM_NAMES[s] for s in shown),
        "overstory ÷ trio",
        "LangGraph ÷ trio",
        "target (overstory ÷ trio)",
    ]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    data: dict[str, Any] = {}
    for name, per_run in results.items():
        workload = WORKLOADS[name]
        for figure in workload.figures:
            cells = [name, figure.label]
            entry: dict[str, Any] = {}
            for system in shown:
                values = [
                    float(r[system][figure.key])
                    for r in per_run
                    if system in r and figure.key in r[system]
                ]
                entry[system] = values
                cells.append(_spread(values, figure.digits) if system in workload.systems else "")
            for other in ("overstory", "langgraph"):
                ratios = []
                if workload.baseline is not None:
                    for r in per_run:
                        base, it = r.get(workload.baseline, {}), r.get(other, {})
                        if figure.key in base and figure.key in it and base[figure.key]:
                            ratios.append(float(it[figure.key]) / float(base[figure.key]))
                entry[f"{other}/trio"] = ratios
                cells.append(_ratio_text(ratios))
            if figure.target is None:
                cells.append("")
            else:
                sign = "≥" if figure.higher_is_better else "≤"
                ratios = entry["overstory/trio"]
                met = bool(ratios) and (
                    statistics.median(ratios) >= figure.target
                    if figure.higher_is_better
                    else statistics.median(ratios) <= figure.target
                )
                cells.append(f"{sign} {figure.target:g}× {'met' if met else 'NOT met'}")
            data[f"{name} {figure.key}"] = entry
            rows.append("| " + " | ".join(cells) + " |")
        errors = [
            f"{name} {system}: {result['error']}"
            for r in per_run
            for system, result in r.items()
            if "error" in result
        ]
        data[f"{name} errors"] = errors
    return "\n".join(rows), data


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores (`nproc`), {model}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def write_readme(path: Path, section: str) -> None:
    text = path.read_text()
    if START_MARK in text and END_MARK in text:
        before, rest = text.split(START_MARK, 1)
        _, after = rest.split(END_MARK, 1)
        text = f"{before}{START_MARK}\n{section}\n{END_MARK}{after}"
    else:
        text = f"{text.rstrip()}\n\n## Performance\n\n{START_MARK}\n{section}\n{END_MARK}\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run overstory's benchmark suite against bare trio and LangGraph.",
    )
    p.add_argument(
        "--workloads",
        default="W1,W2,W3,W5,soak",
        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)",
    )
    p.add_argument("--runs", type=int, default=5, help="runs per workload (default 5)")
    p.add_argument("--systems", default="trio,overstory,langgraph")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a result")
    p.add_argument("--readme", type=Path, help="write the results table into this README")
    p.add_argument("--json", type=Path, help="write every measurement to this file")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workloads: {', '.join(unknown)}")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if "langgraph" in systems and not available("langgraph"):
        print("LangGraph is not installed (pip install -e '.[bench]'): skipped", file=sys.stderr)
    started = datetime.datetime.now(datetime.UTC)
    results = run_suite(names, args.runs, systems, args.quick, sys.stderr)
    table, data = summarise(results, systems)
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    section = "\n".join(
        [
            f"Measured {started:%Y-%m-%d} on {machine()}, with `{command.strip()}` "
            f"({args.runs} runs; each figure is the median with the range in brackets; "
            "ratios are taken pair by pair within a run).",
            "",
            table,
        ]
    )
    print(section)
    for name in names:
        for error in data.get(f"{name} errors", []):
            print(f"error: {error}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "summary": data}, indent=1))
    if args.readme is not None:
        write_readme(args.readme, section)
