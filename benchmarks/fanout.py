"""W1 fan-out and W2 failure storm, in bare trio, overstory and LangGraph.

One goal: a strategic level whose plan has ``steps`` independent steps, each handed to
its own tactical team that fans out to ``leaves`` leaf calls; a leaf call yields once
(``await trio.sleep(0)``, ``asyncio.sleep(0)`` in LangGraph) and returns a small dict.
``goals`` goals, ``in_flight`` at a time. With ``fail`` > 0 (W2) each leaf *attempt*
fails with that probability, drawn in advance from a seeded table shared by every
system, and is retried up to ``attempts`` attempts with no backoff; a leaf call that
fails every attempt fails its goal (its siblings are cancelled).

Run one measurement: ``python -m benchmarks.fanout SYSTEM [--goals N] [--fail P] ...``.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import trio.lowlevel

from benchmarks._common import current_rss_mb, emit, peak_rss_mb, timed

SYSTEMS = ("trio", "overstory", "langgraph")


class LeafError(Exception):
    """The seeded failure of one leaf attempt."""


class Table:
    """Which leaf attempts fail: ``fails(g, s, i, a)`` for goal, step, item, attempt (0-based)."""

    def __init__(
        self, goals: int, steps: int, leaves: int, attempts: int, p: float, seed: int
    ) -> None:
        self.shape = (steps, leaves, attempts)
        rng = random.Random(seed)
        size = goals * steps * leaves * attempts
        self.bits = bytes(1 if p > 0 and rng.random() < p else 0 for _ in range(size))

    def fails(self, g: int, s: int, i: int, a: int) -> bool:
        steps, leaves, attempts = self.shape
        if a >= attempts:
            return True
        return bool(self.bits[((g * steps + s) * leaves + i) * attempts + a])

    def goal_succeeds(self, g: int) -> bool:
        steps, leaves, attempts = self.shape
        return all(
            not all(self.fails(g, s, i, a) for a in range(attempts))
            for s in range(steps)
            for i in range(leaves)
        )


# -- bare trio: the same structure without supervision ---------------------------------


def run_trio(args: argparse.Namespace, table: Table) -> dict[str, Any]:
    import trio

    calls = 0
    succeeded = 0

    async def leaf(g: int, s: int, i: int, a: int) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await trio.lowlevel.checkpoint()
        if table.fails(g, s, i, a):
            raise LeafError(f"goal {g} step {s} item {i} attempt {a}")
        return {"g": g, "s": s, "i": i, "ok": True}

    async def call(g: int, s: int, i: int, out: list[Any]) -> None:
        for a in range(args.attempts):
            try:
                out[i] = await leaf(g, s, i, a)
                return
            except LeafError:
                if a == args.attempts - 1:
                    raise

    async def step(g: int, s: int, results: dict[str, Any]) -> None:
        out: list[Any] = [None] * args.leaves
        async with trio.open_nursery() as nursery:
            for i in range(args.leaves):
                nursery.start_soon(call, g, s, i, out)
        results[f"s{s}"] = out

    async def goal(g: int, limiter: trio.CapacityLimiter) -> None:
        nonlocal succeeded
        async with limiter:
            results: dict[str, Any] = {}
            ok = True
            try:
                async with trio.open_nursery() as nursery:
                    for s in range(args.steps):
                        nursery.start_soon(step, g, s, results)
            except* LeafError:
                ok = False
            succeeded += ok

    async def main() -> None:
        limiter = trio.CapacityLimiter(args.in_flight)
        async with trio.open_nursery() as nursery:
            for g in range(args.goals):
                nursery.start_soon(goal, g, limiter)

    seconds, _ = timed(lambda: trio.run(main))
    return {"seconds": seconds, "calls": calls, "succeeded": succeeded}


# -- overstory ---------------------------------------------------------------------------


def build_tree(args: argparse.Namespace, table: Table) -> Any:
    import attrs
    import trio

    import overstory as ov

    counter = {"calls": 0}

    def make_leaf(s: int) -> ov.FunctionLeaf:
        @ov.leaf(name="work", description="Does one unit of work")
        async def work(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
            counter["calls"] += 1
            await trio.lowlevel.checkpoint()
            g, i = task.input["g"], task.input["i"]
            if table.fails(g, s, i, ctx.attempt - 1):
                raise LeafError(f"goal {g} step {s} item {i} attempt {ctx.attempt}")
            return {"g": g, "s": s, "i": i, "ok": True}

        return work

    policies: dict[str, Any] = {}
    strategic: dict[str, Any] = {}
    if args.fail > 0:
        # Only retries are compared: no breaker, no intensity trip, and an escalated
        # team is not reassigned to another team (the goal fails, as in bare trio).
        retry = ov.Retry(
            attempts=args.attempts, backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0)
        )
        policies = {"retry": retry, "intensity": ov.Intensity(max_failures=10**9), "breaker": None}
        strategic = {**policies, "retry": attrs.evolve(retry, reassign=False)}
    teams = [
        ov.Tactical(
            f"t{s}",
            f"Team {s}: calls its worker once per item",
            children=[make_leaf(s)],
            plan=[ov.Step("call", "Call the worker for each item", for_each="input")],
            **policies,
        )
        for s in range(args.steps)
    ]
    root = ov.Strategic(
        "root",
        plan=[ov.Step(f"s{s}", f"Run step {s}", to=f"t{s}") for s in range(args.steps)],
        children=teams,
        **strategic,
    )
    return ov.Tree("fanout", root), counter


def run_overstory(args: argparse.Namespace, table: Table) -> dict[str, Any]:
    import trio

    import overstory as ov

    tree, counter = build_tree(args, table)
    succeeded = 0

    async def goal(runner: ov.Runner, g: int) -> None:
        nonlocal succeeded
        handle = await runner.submit(
            f"goal {g}", input=[{"g": g, "i": i} for i in range(args.leaves)]
        )
        outcome = await handle.outcome()
        if outcome.status is ov.Status.SUCCEEDED:
            succeeded += 1
            output = outcome.output
            assert len(output) == args.steps
            assert len(output[f"s{args.steps - 1}"]) == args.leaves

    async def main() -> None:
        # Like the bare-trio version: one task per goal, which waits for its turn (the
        # runner admits ``in_flight`` at a time) and keeps nothing once the goal has ended.
        async with (
            tree.running(max_concurrent=args.in_flight, seed=args.seed) as runner,
            trio.open_nursery() as nursery,
        ):
            for g in range(args.goals):
                nursery.start_soon(goal, runner, g)

    seconds, _ = timed(lambda: trio.run(main))
    return {"seconds": seconds, "calls": counter["calls"], "succeeded": succeeded}


# -- LangGraph ---------------------------------------------------------------------------


def run_langgraph(args: argparse.Namespace, table: Table) -> dict[str, Any]:
    import asyncio
    import operator
    from typing import Annotated, TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, RetryPolicy, Send

    calls = 0
    tries: dict[tuple[int, int, int], int] = {}

    # The functional form: this module's postponed annotations would hide the reducer.
    State = TypedDict(  # noqa: UP013
        "State", {"g": int, "results": Annotated[list[dict[str, Any]], operator.add]}
    )

    def plan(state: Any) -> Command[Any]:
        return Command(
            goto=[Send("tactical", {"g": state["g"], "s": s}) for s in range(args.steps)]
        )

    def tactical(arg: dict[str, int]) -> Command[Any]:
        g, s = arg["g"], arg["s"]
        return Command(goto=[Send("leaf", {"g": g, "s": s, "i": i}) for i in range(args.leaves)])

    async def leaf(arg: dict[str, int]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        g, s, i = arg["g"], arg["s"], arg["i"]
        a = tries.get((g, s, i), 0)
        tries[(g, s, i)] = a + 1
        await asyncio.sleep(0)
        if table.fails(g, s, i, a):
            raise LeafError(f"goal {g} step {s} item {i} attempt {a}")
        return {"results": [{"g": g, "s": s, "i": i, "ok": True}]}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("tactical", tactical)
    builder.add_node(
        "leaf",
        leaf,
        retry_policy=RetryPolicy(
            max_attempts=args.attempts, initial_interval=0.0, jitter=False, retry_on=LeafError
        ),
    )
    builder.add_edge(START, "plan")
    builder.add_edge("leaf", END)
    graph = builder.compile()
    succeeded = 0

    async def goal(g: int, limiter: asyncio.Semaphore) -> None:
        nonlocal succeeded
        async with limiter:
            try:
                state = await graph.ainvoke({"g": g, "results": []})
            except LeafError:
                return
            assert len(state["results"]) == args.steps * args.leaves
            succeeded += 1

    async def main() -> None:
        limiter = asyncio.Semaphore(args.in_flight)
        await asyncio.gather(*(goal(g, limiter) for g in range(args.goals)))

    seconds, _ = timed(lambda: asyncio.run(main()))
    return {"seconds": seconds, "calls": calls, "succeeded": succeeded}


RUNNERS = {"trio": run_trio, "overstory": run_overstory, "langgraph": run_langgraph}


def parser(systems: tuple[str, ...] = SYSTEMS) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("system", choices=systems)
    p.add_argument("--goals", type=int, default=500)
    p.add_argument("--in-flight", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--leaves", type=int, default=10)
    p.add_argument("--fail", type=float, default=0.0)
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workload", default=None, help="the name to report (W1 or W2)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    table = Table(args.goals, args.steps, args.leaves, args.attempts, args.fail, args.seed)
    expected = sum(1 for g in range(args.goals) if table.goal_succeeds(g))
    rss_before = current_rss_mb()
    result = RUNNERS[args.system](args, table)
    seconds = result["seconds"]
    emit(
        args.workload or ("W2" if args.fail > 0 else "W1"),
        args.system,
        seconds=seconds,
        goals=args.goals,
        leaf_calls=args.goals * args.steps * args.leaves,
        leaf_attempts=result["calls"],
        leaf_calls_per_s=args.goals * args.steps * args.leaves / seconds,
        goals_per_s=args.goals / seconds,
        success_fraction=result["succeeded"] / args.goals,
        expected_success_fraction=expected / args.goals,
        rss_before_mb=rss_before,
        peak_rss_mb=peak_rss_mb(),
    )


if __name__ == "__main__":
    main()
