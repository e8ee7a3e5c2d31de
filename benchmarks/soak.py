"""Soak: 50,000 goals through one long-running runner; RSS at the start and the end.

The tree is W1's at a small size (2 steps × 2 leaf calls per goal) and goals are fed
continuously, ``in_flight`` at a time, the way a daemon feeds them. RSS and the number
of objects the garbage collector tracks are read after a warm-up and at the end; a
runner that keeps per-goal state after goals end grows between the two.

Run: ``python -m benchmarks.soak overstory [--goals N]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import deque
from typing import Any

from benchmarks._common import current_rss_mb, emit, peak_rss_mb
from benchmarks.fanout import Table, build_tree


def run_overstory(args: argparse.Namespace) -> dict[str, Any]:
    import trio

    import overstory as ov

    shape = argparse.Namespace(steps=2, leaves=2, attempts=3, fail=0.0)
    tree, _ = build_tree(shape, Table(1, 2, 2, 3, 0.0, 0))
    figures: dict[str, Any] = {}

    def reading() -> tuple[float, int]:
        gc.collect()
        return current_rss_mb(), len(gc.get_objects())

    async def main() -> None:
        async with tree.running() as runner:
            pending: deque[ov.GoalHandle] = deque()
            succeeded = 0
            start = time.perf_counter()
            for g in range(args.goals):
                if g == args.warmup:
                    while pending:
                        succeeded += (await pending.popleft().outcome()).ok
                    figures["rss_start_mb"], figures["objects_start"] = reading()
                pending.append(
                    await runner.submit(f"goal {g}", input=[{"g": 0, "i": i} for i in range(2)])
                )
                if len(pending) >= args.in_flight:
                    succeeded += (await pending.popleft().outcome()).ok
            while pending:
                succeeded += (await pending.popleft().outcome()).ok
            figures["seconds"] = time.perf_counter() - start
            figures["succeeded"] = succeeded
            figures["in_flight_after"] = len(runner.in_flight)
            figures["rss_end_mb"], figures["objects_end"] = reading()

    trio.run(main)
    return figures


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("system", choices=("overstory",))
    p.add_argument("--goals", type=int, default=50_000)
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--in-flight", type=int, default=10)
    args = p.parse_args(argv)
    figures = run_overstory(args)
    assert figures["succeeded"] == args.goals, figures
    emit(
        "soak",
        args.system,
        goals=args.goals,
        goals_per_s=args.goals / figures["seconds"],
        rss_growth_mb=figures["rss_end_mb"] - figures["rss_start_mb"],
        object_growth=figures["objects_end"] - figures["objects_start"],
        peak_rss_mb=peak_rss_mb(),
        **figures,
    )


if __name__ == "__main__":
    main()
