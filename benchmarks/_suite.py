"""The suite runner: fresh process per measurement, several runs, pair-by-pair ratios.

Every measurement is ``python -m benchmarks.MODULE SYSTEM ARGS...`` in a new process,
which prints one JSON line. Within one run the systems of a workload are measured
back to back (their order alternates between runs), so a ratio compares two
measurements taken under the same machine load; the suite reports the median and the
range of the per-run figures and of the per-run ratios.

A workload's ratios are taken against its baseline system (bare trio, or for W4 the raw
OpenTelemetry SDK); a workload without one (W6, soak) reports its own figures, and a
figure may carry an absolute target (W6: at least 1,000 accepts/s, p99 under 25 ms) that
the median of overstory's runs meets or not.
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
    target: float | None = None  # the ratio to the baseline the issue asks for
    digits: int = 0
    limit: float | None = None  # an absolute target for overstory's own figure
    strict: bool = False  # the limit itself misses it (p99 < 25 ms)
    unit: str = ""  # shown after the limit
    baseline_key: str | None = None  # the baseline's figure to divide by (default: key)
    compared: bool = True  # False: only overstory reports it (no baseline, no ratio)

    def target_text(self, ratios: list[float], values: list[float]) -> tuple[str, bool | None]:
        """The target cell (``≥ 0.5× met``, ``< 25 ms NOT met``) and whether it is met
        (None: no target), judged on the median of the runs."""
        parts: list[str] = []
        met: bool | None = None
        for bound, figures, suffix in (
            (self.target, ratios, "×"),
            (self.limit, values, self.unit),
        ):
            if bound is None:
                continue
            ok = bool(figures) and self._meets(statistics.median(figures), bound)
            met = ok if met is None else met and ok
            parts.append(f"{self._sign()} {bound:,g}{suffix} {'met' if ok else 'NOT met'}")
        return "; ".join(parts), met

    def _sign(self) -> str:
        if self.higher_is_better:
            return ">" if self.strict else "≥"
        return "<" if self.strict else "≤"

    def _meets(self, value: float, bound: float) -> bool:
        if self.higher_is_better:
            return value > bound if self.strict else value >= bound
        return value < bound if self.strict else value <= bound


@dataclass(frozen=True)
class Workload:
    name: str
    module: str
    title: str
    systems: tuple[str, ...]
    figures: tuple[Figure, ...]
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    baseline: str | None = "trio"  # the system ratios are taken against
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
            "W4",
            "tracing",
            "tracing: W1 (500 goals, 112 spans each) with tracing on, against bare trio "
            "making the same spans with the raw SDK; cost per span = (on − off) ÷ spans, "
            "CPU time",
            ("sdk", "overstory"),
            (
                Figure("us_per_span", "µs per span", False, 1.3, 1),
                Figure(
                    "us_per_span_with_metrics",
                    "µs per span, metrics on too",
                    False,
                    None,
                    1,
                    baseline_key="us_per_span",
                ),
                Figure("spans_per_goal", "spans per goal", True),
                Figure("leaf_calls_per_s_off", "leaf calls/s, tracing off", True, compared=False),
                Figure("leaf_calls_per_s_on", "leaf calls/s, tracing on", True, compared=False),
            ),
            args=("--goals", "500", "--repeat", "3"),
            quick=("--goals", "4", "--repeat", "1"),
            baseline="sdk",
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
            "W6",
            "daemon",
            "daemon: 6,000 durable accepts, 2,000 goals end to end and 3,000 GET /healthz "
            "over 8 loopback keep-alive connections",
            ("overstory",),
            (
                Figure("accepts_per_s", "durable accepts/s", True, limit=1000, unit="/s"),
                Figure("accept_p50_ms", "accept p50 ms", False, None, 1),
                Figure(
                    "accept_p99_ms",
                    "accept p99 ms",
                    False,
                    digits=1,
                    limit=25,
                    strict=True,
                    unit=" ms",
                ),
                Figure("goals_per_s", "goals/s end to end", True),
                Figure("floor_per_s", "GET /healthz/s (the HTTP floor)", True),
            ),
            quick=("--floor", "20", "--accepts", "40", "--goals", "20", "--connections", "2"),
            baseline=None,
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
        Workload(
            "soak-daemon",
            "daemon_soak",
            "daemon soak: 50,000 goals over HTTP to one `overstory serve` (the soak's tree), "
            "in batches of 1,000, with `--retention 10s`",
            ("overstory",),
            (
                Figure("goals_per_s", "goals/s end to end", True),
                Figure("rss_start_mb", "daemon RSS after warm-up MiB", False, None, 1),
                Figure("rss_half_mb", "daemon RSS half-way MiB", False, None, 1),
                Figure("rss_end_mb", "daemon RSS at the end MiB", False, None, 1),
                Figure("journal_end_mb", "journal on disk at the end MiB", False, None, 1),
                Figure("goals_purged", "goals deleted by retention", True),
            ),
            quick=("--goals", "60", "--warmup", "20", "--batch", "20"),
            baseline=None,
        ),
    )
}

SYSTEM_NAMES = {
    "trio": "bare trio",
    "sdk": "raw SDK",
    "overstory": "overstory",
    "langgraph": "LangGraph",
}
#: The systems shown in columns of their own next to the baseline, and divided by it.
COMPARED = ("overstory", "langgraph")


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


def systems_for(workload: Workload, wanted: Sequence[str] | None) -> list[str]:
    """The systems to measure: those wanted (None: all), and always the baseline."""
    chosen = [
        s for s in workload.systems if wanted is None or s in wanted or s == workload.baseline
    ]
    if "langgraph" in chosen and not available("langgraph"):
        chosen.remove("langgraph")
    return chosen


def run_suite(
    names: Sequence[str], runs: int, systems: Sequence[str] | None, quick: bool, log: Any
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


def _values(per_run: list[dict[str, dict[str, Any]]], system: str, key: str) -> list[float]:
    return [float(r[system][key]) for r in per_run if system in r and key in r[system]]


def summarise(
    results: dict[str, list[dict[str, dict[str, Any]]]],
) -> tuple[str, dict[str, Any]]:
    """A markdown table and the same figures as data."""
    compared = [
        s
        for s in COMPARED
        if s == "overstory" or any(s in r for per_run in results.values() for r in per_run)
    ]
    header = [
        "workload",
        "figure",
        "baseline",
        "baseline's figure",
        *(SYSTEM_NAMES[s] for s in compared),
        *(f"{SYSTEM_NAMES[s]} ÷ baseline" for s in compared),
        "target",
    ]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    data: dict[str, Any] = {}
    for name, per_run in results.items():
        workload = WORKLOADS[name]
        for figure in workload.figures:
            baseline = workload.baseline if figure.compared else None
            base_key = figure.baseline_key or figure.key
            entry: dict[str, Any] = {"baseline": baseline}
            cells = [name, figure.label]
            if baseline is None:
                cells += ["", ""]
            else:
                entry[baseline] = _values(per_run, baseline, base_key)
                cells += [SYSTEM_NAMES[baseline], _spread(entry[baseline], figure.digits)]
            for system in compared:
                entry[system] = _values(per_run, system, figure.key)
                shown = system in workload.systems
                cells.append(_spread(entry[system], figure.digits) if shown else "")
            ratios: dict[str, list[float]] = {}
            for system in compared:
                ratios[system] = []
                if baseline is not None:
                    for r in per_run:
                        base, it = r.get(baseline, {}), r.get(system, {})
                        if base_key in base and figure.key in it and base[base_key]:
                            ratios[system].append(float(it[figure.key]) / float(base[base_key]))
                    entry[f"{system}/{baseline}"] = ratios[system]
                cells.append(_ratio_text(ratios[system]) if baseline is not None else "")
            text, met = figure.target_text(ratios["overstory"], entry["overstory"])
            if met is not None:
                entry["target"] = {"text": text, "met": met}
            cells.append(text)
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
        description="Run overstory's benchmark suite against its baselines and LangGraph.",
    )
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)",
    )
    p.add_argument("--runs", type=int, default=5, help="runs per workload (default 5)")
    p.add_argument(
        "--systems",
        help=f"comma-separated, from {', '.join(SYSTEM_NAMES)} (default: every system of "
        "each workload); a workload's baseline is always measured",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a result")
    p.add_argument("--readme", type=Path, help="write the results table into this README")
    p.add_argument("--json", type=Path, help="write every measurement to this file")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workloads: {', '.join(unknown)}")
    systems = None
    if args.systems is not None:
        systems = [s.strip() for s in args.systems.split(",") if s.strip()]
        unknown = [s for s in systems if s not in SYSTEM_NAMES]
        if unknown:
            p.error(f"unknown systems: {', '.join(unknown)}")
    wants_langgraph = any("langgraph" in WORKLOADS[n].systems for n in names) and (
        systems is None or "langgraph" in systems
    )
    if wants_langgraph and not available("langgraph"):
        print("LangGraph is not installed (pip install -e '.[bench]'): skipped", file=sys.stderr)
    started = datetime.datetime.now(datetime.UTC)
    results = run_suite(names, args.runs, systems, args.quick, sys.stderr)
    table, data = summarise(results)
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    section = "\n".join(
        [
            f"Measured {started:%Y-%m-%d} on {machine()}, with `{command.strip()}` "
            f"({args.runs} run{'s' if args.runs != 1 else ''}; "
            "each figure is the median with the range in brackets; "
            "ratios are taken pair by pair within a run; a target in × is for overstory ÷ "
            "the baseline, any other for overstory's own figure, and both are judged on "
            "the median).",
            "",
            table,
        ]
    )
    print(section)
    errors = [error for name in names for error in data.get(f"{name} errors", [])]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "summary": data}, indent=1))
    if args.readme is not None:
        write_readme(args.readme, section)
    if errors:
        raise SystemExit(f"{len(errors)} measurement(s) failed")
