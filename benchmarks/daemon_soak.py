"""Daemon soak: 50,000 goals through one ``overstory serve``; the daemon's RSS after a
warm-up and at the end.

The daemon serves ``benchmarks/trees.py:soak`` (W1's shape at a small size: 2 steps,
each a team fanning out to 2 leaf calls) with a fresh state directory and the default
journal. Goals are submitted over ``--connections`` keep-alive loopback connections in
batches of ``--batch``; after each batch the client waits until nothing is queued or
running, so the daemon holds at most one batch at a time and the end reading is taken
in the same state as the start reading: idle, every goal finished. The daemon's RSS
(``VmRSS`` from Linux ``/proc``) is read after ``--warmup`` goals, half-way through the
rest, and after the last one; a daemon that keeps per-goal state in memory after a goal
ends grows from each reading to the next, while caches that fill up to a bound stop
growing by the second half. The daemon runs with a short ``--retention`` (10 s), so
finished goals are deleted from the journal while the soak runs: the journal's size
after the warm-up and at the end, and the number of goals deleted, are reported too.

Run: ``python -m benchmarks.daemon_soak overstory [--goals N] [--warmup N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import current_rss_mb, emit
from benchmarks.daemon import Server, _fetch, _load, _wait_idle


def journal_mb(state: Path) -> float:
    """The journal's size on disk in MiB: the database, its WAL and shared memory."""
    return sum(f.stat().st_size for f in state.glob("journal.sqlite3*")) / 2**20


async def _metrics(server: Server) -> dict[str, float]:
    """Every unlabelled sample, and ``finished_<status>``, from ``GET /metrics``."""
    body = await _fetch(server, "/metrics")
    finished = 'overstory_goals_finished_total{status="'
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith(finished):
            label, value = line[len(finished) :].split('"} ')
            samples[f"finished_{label}"] = float(value)
        elif line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            samples[name] = float(value)
    return samples


async def _batch(server: Server, first: int, count: int, connections: int) -> dict[str, int]:
    """Submit goals ``first .. first + count - 1`` and wait until the daemon is idle;
    returns the HTTP statuses of the submissions."""
    requests = [
        server.request("POST", "/v1/goals", {"goal": f"soak {n}", "input": [n, n + 1]})
        for n in range(first, first + count)
    ]
    load = await _load(server, requests, connections)
    await _wait_idle(server)
    statuses: dict[str, int] = load["statuses"]
    return statuses


async def _soak(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    statuses: dict[str, int] = {}

    async def submit(first: int, last: int) -> float:
        """Submit goals ``first .. last - 1`` batch by batch; returns the seconds taken."""
        began = time.perf_counter()
        for start in range(first, last, args.batch):
            done = await _batch(server, start, min(args.batch, last - start), args.connections)
            for code, count in done.items():
                statuses[code] = statuses.get(code, 0) + count
        return time.perf_counter() - began

    async def reading() -> tuple[float, float]:
        await trio.sleep(0.5)  # let the journal's last commits and the allocator settle
        return current_rss_mb(server.process.pid), journal_mb(server.state)

    half = args.warmup + (args.goals - args.warmup) // 2
    await submit(0, args.warmup)  # untimed: throughput is measured after the warm-up
    rss_start, journal_start = await reading()
    seconds = await submit(args.warmup, half)
    rss_half, _ = await reading()
    seconds += await submit(half, args.goals)
    rss_end, journal_end = await reading()
    return {
        "seconds": seconds,
        "goals_per_s": (args.goals - args.warmup) / seconds,
        "rss_start_mb": rss_start,
        "rss_half_mb": rss_half,
        "rss_end_mb": rss_end,
        "journal_start_mb": journal_start,
        "journal_end_mb": journal_end,
        "statuses": statuses,
        "metrics": await _metrics(server),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.daemon_soak", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("system", choices=("overstory",))
    p.add_argument("--goals", type=int, default=50_000)
    p.add_argument("--warmup", type=int, default=2_000)
    p.add_argument("--batch", type=int, default=1_000, help="goals submitted between idles")
    p.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    p.add_argument(
        "--retention",
        default="10s",
        help="the daemon's --retention: short, so that goals expire during the run (default 10s)",
    )
    args = p.parse_args(argv)
    if not 0 < args.warmup < args.goals:
        p.error("--warmup must be above 0 and below --goals")
    with tempfile.TemporaryDirectory() as name:
        server = Server(
            Path(name) / "state",
            "soak",
            "--max-concurrent",
            "64",
            "--max-queue",
            str(args.batch + 10),
            "--retention",
            args.retention,
        )
        try:
            figures = trio.run(_soak, server, args)
        finally:
            server.stop()
    # Only worth reporting if every goal was accepted and succeeded.
    metrics = figures.pop("metrics")
    if figures.pop("statuses") != {"202": args.goals}:
        raise SystemExit("not every submission was accepted")
    if metrics.get("finished_succeeded") != args.goals:
        raise SystemExit(f"not every goal succeeded: {metrics}")
    emit(
        "soak-daemon",
        args.system,
        goals=args.goals,
        warmup=args.warmup,
        retention=args.retention,
        rss_growth_mb=figures["rss_end_mb"] - figures["rss_start_mb"],
        goals_purged=int(metrics.get("overstory_goals_purged_total", 0)),
        **figures,
    )


if __name__ == "__main__":
    main()
