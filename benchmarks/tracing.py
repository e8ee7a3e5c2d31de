"""W4 tracing: W1 with telemetry on, against bare trio making the same spans with the raw SDK.

    python -m benchmarks.tracing SYSTEM [--goals 500] [--repeat 3]

W1's shape (``goals`` goals, ``in_flight`` at a time, each a strategic supervisor whose
plan hands ``steps`` steps to as many tactical teams, each fanning out to ``leaves`` leaf
calls that yield once) is run with tracing off and on, in one process, interleaved
``--repeat`` times; the best CPU time of each side is kept (``time.process_time``: the
batch processor's thread included, other processes excluded). Every traced side exports
through a ``BatchSpanProcessor`` into an exporter that drops the spans.

* ``overstory``: ``benchmarks.fanout``'s W1 tree, untraced, then with
  ``ov.telemetry.configure(exporter=<drop>)``, then with metrics too (an in-memory reader).
  ``us_per_span`` = (on − off) ÷ spans.
* ``sdk``: ``benchmarks.fanout``'s bare-trio W1, untraced, then making the same spans
  with the raw SDK (a goal span, the strategic supervisor's span, one per team step, one
  per leaf call, with the attributes overstory gives them, each a
  ``start_as_current_span`` in the task that does the work). ``us_per_span`` = (traced −
  untraced) ÷ spans.

Both print ``spans_per_goal``, which must agree (112 at W1's size). W1 has no failures,
so no links, events or exceptions: ``python -m benchmarks.telemetry_cost`` measures those
on a smaller tree with a retried failure in every goal.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import trio
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import overstory as ov
from benchmarks import fanout
from benchmarks._common import emit
from benchmarks.telemetry_cost import Drop, RawSdkInstrumentation, with_telemetry

SYSTEMS = ("sdk", "overstory")
TREE = "fanout"  # the name fanout.build_tree gives its tree


def spans_per_goal(args: argparse.Namespace) -> int:
    """The goal, the strategic supervisor, each team step and each leaf call."""
    steps: int = args.steps
    leaves: int = args.leaves
    return 2 + steps * (1 + leaves)


async def overstory_goals(
    args: argparse.Namespace, table: fanout.Table, instrumentation: ov.telemetry.Instrumentation
) -> float:
    """W1 in overstory under ``instrumentation``; returns the CPU seconds it took."""
    tree, _ = fanout.build_tree(args, table)
    async with (
        tree.running(
            max_concurrent=args.in_flight, seed=args.seed, instrumentation=instrumentation
        ) as runner,
        trio.open_nursery() as nursery,
    ):
        start = time.process_time()

        async def goal(g: int) -> None:
            handle = await runner.submit(
                f"goal {g}", input=[{"g": g, "i": i} for i in range(args.leaves)]
            )
            outcome = await handle.outcome()
            assert outcome.ok, outcome.error

        for g in range(args.goals):
            nursery.start_soon(goal, g)
    return time.process_time() - start


async def bare_goals(
    args: argparse.Namespace, table: fanout.Table, raw: RawSdkInstrumentation | None
) -> float:
    """W1 in bare trio (the structure of ``fanout.run_trio``), making each span overstory
    makes when ``raw`` is given; returns the CPU seconds it took."""
    leaf_path = "work"

    async def leaf(g: int, s: int, i: int) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        if table.fails(g, s, i, 0):
            raise fanout.LeafError(f"goal {g} step {s} item {i}")
        return {"g": g, "s": s, "i": i, "ok": True}

    async def call(g: int, s: int, i: int, out: list[Any], goal_id: str) -> None:
        if raw is None:
            out[i] = await leaf(g, s, i)
            return
        with raw.invoke(
            layer=ov.Layer.LEAF,
            name=leaf_path,
            path=f"{TREE}/root/t{s}/{leaf_path}",
            description="Does one unit of work",
            goal_id=goal_id,
            step="call",
            attempt=1,
            previous=None,
            attributes={"overstory.item": i},
        ):
            out[i] = await leaf(g, s, i)

    async def step(g: int, s: int, results: dict[str, Any], goal_id: str) -> None:
        out: list[Any] = [None] * args.leaves
        if raw is None:
            async with trio.open_nursery() as nursery:
                for i in range(args.leaves):
                    nursery.start_soon(call, g, s, i, out, goal_id)
        else:
            with raw.invoke(
                layer=ov.Layer.TACTICAL,
                name=f"t{s}",
                path=f"{TREE}/root/t{s}",
                description=f"Team {s}: calls its worker once per item",
                goal_id=goal_id,
                step=f"s{s}",
                attempt=1,
                previous=None,
                attributes={"overstory.strategy": "one_for_one"},
            ):
                async with trio.open_nursery() as nursery:
                    for i in range(args.leaves):
                        nursery.start_soon(call, g, s, i, out, goal_id)
        results[f"s{s}"] = out

    async def steps(g: int, goal_id: str) -> None:
        results: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            for s in range(args.steps):
                nursery.start_soon(step, g, s, results, goal_id)

    async def goal(g: int, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            goal_id = f"{g:032x}"
            if raw is None:
                await steps(g, goal_id)
                return
            with (
                raw.goal(tree=TREE, goal_id=goal_id, goal=f"goal {g}", layer=ov.Layer.STRATEGIC),
                raw.invoke(
                    layer=ov.Layer.STRATEGIC,
                    name="root",
                    path=f"{TREE}/root",
                    description="",
                    goal_id=goal_id,
                    step=None,
                    attempt=1,
                    previous=None,
                    attributes={"overstory.strategy": "one_for_one"},
                ),
            ):
                await steps(g, goal_id)

    limiter = trio.CapacityLimiter(args.in_flight)
    start = time.process_time()
    async with trio.open_nursery() as nursery:
        for g in range(args.goals):
            nursery.start_soon(goal, g, limiter)
    return time.process_time() - start


def measure_side(side: str, args: argparse.Namespace, table: fanout.Table) -> tuple[float, int]:
    """One measurement of one side: (CPU seconds, spans exported)."""
    if side == "off":
        return trio.run(overstory_goals, args, table, ov.telemetry.NULL_INSTRUMENTATION), 0
    if side == "bare":
        return trio.run(bare_goals, args, table, None), 0
    if side in ("on", "on_metrics"):
        return with_telemetry(
            side == "on_metrics",
            lambda instrumentation: trio.run(overstory_goals, args, table, instrumentation),
        )
    drop = Drop()
    processor = BatchSpanProcessor(drop)
    seconds = trio.run(bare_goals, args, table, RawSdkInstrumentation(processor))
    processor.shutdown()  # type: ignore[no-untyped-call]
    return seconds, drop.count


SIDES = {"sdk": ("bare", "raw"), "overstory": ("off", "on", "on_metrics")}


def parser() -> argparse.ArgumentParser:
    p = fanout.parser(SYSTEMS)
    p.prog = "python -m benchmarks.tracing"
    p.description = (__doc__ or "").split("\n\n")[0]
    p.set_defaults(goals=500)
    p.add_argument("--repeat", type=int, default=3)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.fail:
        raise SystemExit("tracing: W4 is W1 without failures (--fail must be 0)")
    # The fastest side must not outrun the export thread and drop spans (the SDK's queue
    # holds 2,048 by default), which would make it look cheaper: hold a whole measurement.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(max(2048, args.goals * spans_per_goal(args)))
    table = fanout.Table(args.goals, args.steps, args.leaves, args.attempts, 0.0, args.seed)
    sides = SIDES[args.system]
    times: dict[str, list[float]] = {side: [] for side in sides}
    counts: set[int] = set()
    for _ in range(args.repeat):  # interleaved, so that a noisy moment hits every side
        for side in sides:
            seconds, count = measure_side(side, args, table)
            times[side].append(seconds)
            if side not in ("off", "bare"):
                counts.add(count)
    expected: int = args.goals * spans_per_goal(args)
    assert counts == {expected}, f"exported {sorted(counts)} spans, expected {expected}"
    best = {side: min(values) for side, values in times.items()}

    def per_span(seconds: float) -> float:
        return seconds / expected * 1e6

    common = {
        "goals": args.goals,
        "repeat": args.repeat,
        "spans_per_goal": spans_per_goal(args),
    }
    if args.system == "sdk":
        emit(
            "W4",
            "sdk",
            **common,
            us_per_span=per_span(best["raw"] - best["bare"]),
            cpu_seconds_untraced=best["bare"],
            cpu_seconds_traced=best["raw"],
        )
        return
    emit(
        "W4",
        "overstory",
        **common,
        us_per_span=per_span(best["on"] - best["off"]),
        us_per_span_with_metrics=per_span(best["on_metrics"] - best["off"]),
        leaf_calls_per_s_off=args.goals * args.steps * args.leaves / best["off"],
        leaf_calls_per_s_on=args.goals * args.steps * args.leaves / best["on"],
    )


if __name__ == "__main__":
    main()
