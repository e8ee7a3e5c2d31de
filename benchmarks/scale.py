"""W3 scale: 100,000 concurrent leaf calls that each sleep 1 s.

One goal: a strategic level fans out to ``teams`` tactical tasks, each of which fans
out to ``leaves`` leaf calls; every leaf call sleeps ``sleep`` seconds and returns a
small dict. All of them are in flight at once. Reports wall time and peak RSS.

In overstory the strategic plan is one step ``for_each`` over the goal's input (a list
of ``teams`` lists) handed to one tactical team, whose plan fans out over its item
(``leaves`` numbers): 1,000 concurrent tactical supervisions of 100 leaf calls each.

Run one measurement: ``python -m benchmarks.scale SYSTEM [--teams N] [--leaves N]``.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks._common import current_rss_mb, emit, peak_rss_mb, timed

SYSTEMS = ("trio", "overstory", "langgraph")


def run_trio(args: argparse.Namespace) -> int:
    import trio

    done = 0

    async def leaf(t: int, i: int, out: list[Any]) -> None:
        nonlocal done
        await trio.sleep(args.sleep)
        out[i] = {"t": t, "i": i, "ok": True}
        done += 1

    async def team(t: int, results: list[Any]) -> None:
        out: list[Any] = [None] * args.leaves
        async with trio.open_nursery() as nursery:
            for i in range(args.leaves):
                nursery.start_soon(leaf, t, i, out)
        results[t] = out

    async def main() -> None:
        results: list[Any] = [None] * args.teams
        async with trio.open_nursery() as nursery:
            for t in range(args.teams):
                nursery.start_soon(team, t, results)

    trio.run(main)
    return done


def run_overstory(args: argparse.Namespace) -> int:
    import trio

    import overstory as ov

    done = 0

    @ov.leaf(name="work", description="Waits for a slow service")
    async def work(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
        nonlocal done
        await trio.sleep(args.sleep)
        done += 1
        return {"i": task.input, "ok": True}

    team = ov.Tactical(
        "team",
        "Calls the slow service once per item",
        children=[work],
        plan=[ov.Step("call", "Call the service for each item", for_each="input")],
        max_parallel=args.leaves,
    )
    root = ov.Strategic(
        "root",
        plan=[ov.Step("teams", "Hand each batch to a team", to="team", for_each="input")],
        children=[team],
        max_parallel=args.teams,
    )
    tree = ov.Tree("scale", root)
    batch = list(range(args.leaves))

    async def main() -> None:
        async with tree.running() as runner:
            handle = await runner.submit("scale", input=[batch] * args.teams)
            outcome = await handle.outcome()
            assert outcome.status is ov.Status.SUCCEEDED, outcome.failures
            assert len(outcome.output) == args.teams

    trio.run(main)
    return done


def run_langgraph(args: argparse.Namespace) -> int:
    import asyncio
    import operator
    from typing import Annotated, TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, Send

    done = 0
    # The functional form: this module's postponed annotations would hide the reducer.
    State = TypedDict(  # noqa: UP013
        "State", {"results": Annotated[list[dict[str, Any]], operator.add]}
    )

    def plan(state: Any) -> Command[Any]:
        return Command(goto=[Send("tactical", {"t": t}) for t in range(args.teams)])

    def tactical(arg: dict[str, int]) -> Command[Any]:
        return Command(goto=[Send("leaf", {"t": arg["t"], "i": i}) for i in range(args.leaves)])

    async def leaf(arg: dict[str, int]) -> dict[str, Any]:
        nonlocal done
        await asyncio.sleep(args.sleep)
        done += 1
        return {"results": [{"t": arg["t"], "i": arg["i"], "ok": True}]}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("tactical", tactical)
    builder.add_node("leaf", leaf)
    builder.add_edge(START, "plan")
    builder.add_edge("leaf", END)
    graph = builder.compile()

    async def main() -> None:
        state = await graph.ainvoke({"results": []})
        assert len(state["results"]) == args.teams * args.leaves

    asyncio.run(main())
    return done


RUNNERS = {"trio": run_trio, "overstory": run_overstory, "langgraph": run_langgraph}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("system", choices=SYSTEMS)
    p.add_argument("--teams", type=int, default=1000)
    p.add_argument("--leaves", type=int, default=100)
    p.add_argument("--sleep", type=float, default=1.0)
    args = p.parse_args(argv)
    rss_before = current_rss_mb()
    seconds, done = timed(lambda: RUNNERS[args.system](args))
    assert done == args.teams * args.leaves, done
    peak = peak_rss_mb()
    emit(
        "W3",
        args.system,
        seconds=seconds,
        leaf_calls=done,
        overhead_s=seconds - args.sleep,
        rss_before_mb=rss_before,
        peak_rss_mb=peak,
        rss_growth_mb=peak - rss_before,
    )


if __name__ == "__main__":
    main()
