"""How much of W1's or W2's work is left in reference cycles, per goal.

An object in a reference cycle is not freed when its goal ends but at the next
collection of its generation: a goal's state caught in one survives the young
collections, is promoted, and waits for a full collection, which walks the whole heap.
This program runs W1 or W2 (the options of ``benchmarks.fanout``) with the collector
disabled and keeping what it finds, then collects once and reports the objects it found
per goal and their most common types. Bare trio's figure is the floor: ``trio.run``'s
own teardown leaves a few dozen objects in cycles, whatever the number of goals.

Run one measurement: ``python -m benchmarks.cycles SYSTEM [--goals N] [--fail P] ...``.
"""

from __future__ import annotations

import argparse
import collections
import gc

from benchmarks import fanout
from benchmarks._common import emit


def main(argv: list[str] | None = None) -> None:
    args = fanout.parser(("trio", "overstory")).parse_args(argv)
    table = fanout.Table(args.goals, args.steps, args.leaves, args.attempts, args.fail, args.seed)
    run = fanout.RUNNERS[args.system]
    # One small run first, so that imports and caches are not counted.
    run(argparse.Namespace(**{**vars(args), "goals": 2}), table)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run(args, table)
        found = gc.collect()
        types = collections.Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    emit(
        args.workload or ("W2" if args.fail > 0 else "W1"),
        args.system,
        goals=args.goals,
        cyclic_objects=found,
        cyclic_objects_per_goal=found / args.goals,
        most_common=dict(types.most_common(8)),
    )


if __name__ == "__main__":
    main()
