"""Semantics 2, 3 and 12: structured execution of plans, fan-out, aggregation, shared context."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import overstory as ov


def recorder() -> tuple[ov.FunctionLeaf, list[tuple[str, float, float]]]:
    """A leaf that sleeps ``input.get('sleep', 1)`` seconds and logs (step, start, end)."""
    spans: list[tuple[str, float, float]] = []

    async def work(task: ov.Task, ctx: ov.Context) -> Any:
        start = trio.current_time()
        await trio.sleep(1)
        spans.append(
            (
                f"{task.step}" + (f"[{task.item}]" if task.item is not None else ""),
                start,
                trio.current_time(),
            )
        )
        return {"step": task.step, "input": task.input, "deps": dict(ctx.outputs)}

    return ov.FunctionLeaf(fn=work, name="work"), spans


async def test_independent_steps_run_in_parallel(autojump_clock: trio.abc.Clock) -> None:
    """Steps without dependencies start together, as children of the supervisor's nursery."""
    leaf, spans = recorder()
    plan = [ov.Step(n, f"do {n}") for n in "abc"]
    tree = ov.Tree("t", ov.Tactical("team", children=[leaf], plan=plan))
    outcome = await tree.run("go")
    assert outcome.ok
    assert sorted(start for _, start, _ in spans) == [0.0, 0.0, 0.0]
    assert outcome.duration == 1.0


async def test_max_parallel_bounds_concurrent_steps(autojump_clock: trio.abc.Clock) -> None:
    """With max_parallel=2, five independent one-second steps take three seconds."""
    leaf, spans = recorder()
    plan = [ov.Step(n, f"do {n}") for n in "abcde"]
    tree = ov.Tree("t", ov.Tactical("team", children=[leaf], plan=plan, max_parallel=2))
    outcome = await tree.run("go")
    assert outcome.duration == 3.0
    assert sorted(start for _, start, _ in spans) == [0.0, 0.0, 1.0, 1.0, 2.0]


async def test_dependencies_run_after_and_see_outputs(autojump_clock: trio.abc.Clock) -> None:
    """A dependent step starts when its dependencies are done and sees their outputs in ctx."""
    leaf, spans = recorder()
    plan = [
        ov.Step("a", "first"),
        ov.Step("b", "second"),
        ov.Step("c", "third", after=["a", "b"]),
    ]
    tree = ov.Tree("t", ov.Tactical("team", children=[leaf], plan=plan))
    outcome = await tree.run("go", input={"x": 1})
    starts = {name: start for name, start, _ in spans}
    assert starts == {"a": 0.0, "b": 0.0, "c": 1.0}
    assert sorted(outcome.output["c"]["deps"]) == ["a", "b"]
    assert outcome.output["c"]["deps"]["a"]["input"] == {"x": 1}


async def test_outputs_of_outer_steps_reach_nested_leaves(autojump_clock: trio.abc.Clock) -> None:
    """A leaf under a team sees the outputs of its strategic step's dependencies."""
    leaf, _ = recorder()
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("a", "first"), ov.Step("b", "second", after=["a"])],
            children=[ov.Tactical("team", children=[leaf])],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.output["b"]["deps"]["a"]["step"] == "a"


@pytest.mark.parametrize("source", ["input", "input.items"])
async def test_fan_out_over_input(autojump_clock: trio.abc.Clock, source: str) -> None:
    """for_each runs one task per item in parallel; the output is the list of item outputs."""
    leaf, spans = recorder()
    items = [10, 20, 30]
    tree = ov.Tree(
        "t", ov.Tactical("team", children=[leaf], plan=[ov.Step("m", "map", for_each=source)])
    )
    outcome = await tree.run("go", input=items if source == "input" else {"items": items})
    assert [o["input"] for o in outcome.output] == items
    assert sorted(name for name, _, _ in spans) == ["m[0]", "m[1]", "m[2]"]
    assert outcome.duration == 1.0
    assert sorted(s.item for s in outcome.steps if s.item is not None) == [0, 1, 2]


async def test_fan_out_over_dependency_output_bounded(autojump_clock: trio.abc.Clock) -> None:
    """A step fans out over a dependency's output, at most max_parallel items at once."""

    @ov.leaf
    async def produce(task: ov.Task, ctx: ov.Context) -> Any:
        if task.step == "list":
            return {"names": ["a", "b", "c", "d"]}
        await trio.sleep(1)
        return task.input.upper()

    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[produce],
            plan=[
                ov.Step("list", "list the names"),
                ov.Step("each", "shout", after=["list"], for_each="list.names", max_parallel=2),
            ],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.output["each"] == ["A", "B", "C", "D"]
    assert outcome.duration == 2.0


async def test_fan_out_item_failure_retries_only_that_item(autojump_clock: trio.abc.Clock) -> None:
    """One failing item is retried alone; the other items are not re-run."""
    runs: list[Any] = []

    @ov.leaf
    async def flaky(task: ov.Task, ctx: ov.Context) -> Any:
        runs.append(task.input)
        if task.input == 2 and ctx.attempt == 1:
            raise RuntimeError("item 2 failed")
        return task.input

    tree = ov.Tree(
        "t",
        ov.Tactical("team", children=[flaky], plan=[ov.Step("m", "map", for_each="input")]),
    )
    outcome = await tree.run("go", input=[1, 2, 3])
    assert outcome.output == [1, 2, 3]
    assert sorted(runs) == [1, 2, 2, 3]


async def test_fan_out_over_non_list_fails_clearly(autojump_clock: trio.abc.Clock) -> None:
    """for_each naming something that is not a list fails the goal with a clear message."""
    leaf, _ = recorder()
    tree = ov.Tree(
        "t", ov.Tactical("team", children=[leaf], plan=[ov.Step("m", "map", for_each="input")])
    )
    outcome = await tree.run("go", input={"not": "a list"})
    assert outcome.status is ov.Status.FAILED
    assert "must name a list, got dict" in (outcome.error or "")


async def test_empty_fan_out_yields_empty_list(autojump_clock: trio.abc.Clock) -> None:
    """Fanning out over an empty list runs nothing and yields []."""
    leaf, spans = recorder()
    tree = ov.Tree(
        "t", ov.Tactical("team", children=[leaf], plan=[ov.Step("m", "map", for_each="input")])
    )
    outcome = await tree.run("go", input=[])
    assert outcome.output == []
    assert spans == []


async def test_dynamic_plan_is_computed_per_goal(autojump_clock: trio.abc.Clock) -> None:
    """An async plan function builds the steps from the task; it is validated before running."""
    leaf, _ = recorder()

    async def plan(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
        return [ov.Step(f"s{i}", f"part {i}") for i in range(task.input)]

    tree = ov.Tree("t", ov.Tactical("team", children=[leaf], plan=plan))
    async with tree.running() as runner:
        two = await (await runner.submit("go", input=2)).outcome()
        three = await (await runner.submit("go", input=3)).outcome()
    assert sorted(two.output) == ["s0", "s1"]
    assert sorted(three.output) == ["s0", "s1", "s2"]


async def test_invalid_dynamic_plan_fails_before_anything_runs(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A dynamic plan with a cycle fails the goal with PlanError and runs no step."""
    leaf, spans = recorder()

    async def plan(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
        return [ov.Step("a", "x", after=["b"]), ov.Step("b", "y", after=["a"])]

    outcome = await ov.Tree("t", ov.Tactical("team", children=[leaf], plan=plan)).run("go")
    assert outcome.status is ov.Status.FAILED
    assert outcome.failures[-1].error_type == "PlanError"
    assert "cycle" in outcome.failures[-1].message
    assert spans == []


async def test_a_dynamic_plan_routed_below_a_team_to_no_node_fails(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A dynamic plan's step routed to team/nobody fails the goal with PlanError naming
    the route, as the same step in a static plan fails the definition; no step runs."""
    leaf, spans = recorder()

    async def plan(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
        return [ov.Step("a", "x", to="team/ghost")]

    tree = ov.Tree(
        "t", ov.Strategic("boss", children=[ov.Tactical("team", children=[leaf])], plan=plan)
    )
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert outcome.failures[-1].error_type == "PlanError"
    assert "step 'a' is routed to 'team/ghost', which names no node" in outcome.failures[-1].message
    assert spans == []


async def test_custom_aggregator_and_default_aggregation(autojump_clock: trio.abc.Clock) -> None:
    """Default: a mapping step → output (one-step plans return the output itself); a custom
    aggregator receives the outputs, the task and the context."""

    @ov.leaf
    async def num(task: ov.Task, ctx: ov.Context) -> int:
        return len(task.goal)

    async def total(outputs: Any, task: ov.Task, ctx: ov.Context) -> int:
        return sum(outputs.values())

    plan = [ov.Step("a", "x"), ov.Step("b", "yy")]
    default = ov.Tree("t", ov.Tactical("team", children=[num], plan=plan))
    summed = ov.Tree("t", ov.Tactical("team", children=[num], plan=plan, aggregate=total))
    single = ov.Tree("t", ov.Tactical("team", children=[num], plan=[ov.Step("a", "xyz")]))
    assert (await default.run("go")).output == {"a": 1, "b": 2}
    assert (await summed.run("go")).output == 3
    assert (await single.run("go")).output == 3


async def test_planless_supervisor_treats_task_as_one_step(autojump_clock: trio.abc.Clock) -> None:
    """Without a plan the whole task is one step routed to one child."""

    @ov.leaf
    async def echo(task: ov.Task, ctx: ov.Context) -> str:
        return task.goal

    outcome = await ov.Tree("t", ov.Tactical("team", children=[echo])).run("the goal")
    assert outcome.output == "the goal"
    (record,) = outcome.steps
    assert (record.supervisor, record.step, record.agent) == ("t/team", "team", "t/team/echo")


async def test_shared_memory_and_context(autojump_clock: trio.abc.Clock) -> None:
    """ctx gives the task, dependencies' outputs, the goal's shared memory, path and attempt;
    memory written by one agent is read by a later one and ends in the outcome."""
    seen: dict[str, Any] = {}

    @ov.leaf
    async def writer(task: ov.Task, ctx: ov.Context) -> str:
        ctx.memory["note"] = {"from": ctx.path}
        return "written"

    @ov.leaf
    async def reader(task: ov.Task, ctx: ov.Context) -> str:
        seen.update(
            note=ctx.memory["note"],
            path=ctx.path,
            attempt=ctx.attempt,
            goal=ctx.goal,
            goal_id=ctx.goal_id,
            outputs=dict(ctx.outputs),
            name=ctx.name,
        )
        return "read"

    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[writer, reader],
            plan=[ov.Step("w", "x", to="writer"), ov.Step("r", "y", to="reader", after=["w"])],
        ),
    )
    outcome = await tree.run("the goal")
    assert seen["note"] == {"from": "t/team/writer"}
    assert seen["path"] == "t/team/reader"
    assert seen["name"] == "reader"
    assert seen["attempt"] == 1
    assert seen["goal"] == "the goal"
    assert seen["goal_id"] == outcome.goal_id
    assert seen["outputs"] == {"w": "written"}
    assert outcome.memory == {"note": {"from": "t/team/writer"}}


def test_memory_refuses_values_that_are_not_json() -> None:
    """Writing a non-JSON value to shared memory fails at once, naming the key."""
    memory = ov.Memory()
    with pytest.raises(TypeError, match=r"memory\['k'\] must be JSON-serialisable"):
        memory["k"] = object()
    with pytest.raises(TypeError, match="keys must be strings"):
        memory[1] = "x"  # type: ignore[index]
    value = {"a": [1]}
    memory["ok"] = value
    value["a"].append(2)
    assert memory["ok"] == {"a": [1]}


async def test_many_concurrent_goals_are_isolated(autojump_clock: trio.abc.Clock) -> None:
    """Goals running at once each get their own memory, outputs and outcome."""

    @ov.leaf
    async def own(task: ov.Task, ctx: ov.Context) -> Any:
        ctx.memory["me"] = task.input
        await trio.sleep(1)
        return ctx.memory["me"]

    tree = ov.Tree("t", ov.Tactical("team", children=[own]))
    async with tree.running() as runner:
        handles = [await runner.submit("go", input=i) for i in range(50)]
        outputs = [(await h.outcome()).output for h in handles]
    assert outputs == list(range(50))


async def test_max_concurrent_goals_queue_in_order(autojump_clock: trio.abc.Clock) -> None:
    """With max_concurrent=2 the third goal waits for a slot."""

    @ov.leaf
    async def slow(task: ov.Task, ctx: ov.Context) -> float:
        await trio.sleep(1)
        return trio.current_time()

    tree = ov.Tree("t", ov.Tactical("team", children=[slow]))
    async with tree.running(max_concurrent=2) as runner:
        handles = [await runner.submit("go") for _ in range(3)]
        ends = sorted([(await h.outcome()).output for h in handles])
    assert ends == [1.0, 1.0, 2.0]


async def test_submit_validates_its_arguments() -> None:
    """submit() refuses empty goals, bad timeouts, non-JSON input and duplicate ids."""

    @ov.leaf
    async def forever(task: ov.Task, ctx: ov.Context) -> None:
        await trio.sleep_forever()

    async with ov.Tree("t", ov.Tactical("team", children=[forever])).running() as runner:
        with pytest.raises(ValueError, match="non-empty string"):
            await runner.submit("  ")
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            await runner.submit("go", timeout=0)
        with pytest.raises(TypeError, match="JSON-serialisable"):
            await runner.submit("go", input={1, 2})
        await runner.submit("go", goal_id="same")
        with pytest.raises(ValueError, match="already in flight"):
            await runner.submit("go", goal_id="same")
        assert [h.id for h in runner.in_flight] == ["same"]


@pytest.mark.parametrize(
    ("argument", "error", "message"),
    [
        ({"goal_id": 7}, TypeError, "goal_id must be a string, got 7"),
        ({"goal_id": ""}, ValueError, "goal_id must not be empty"),
        ({"budget": {"tokens": 5}}, TypeError, "budget must be an ov.Budget, got dict"),
        ({"memory": ["a"]}, TypeError, "memory must be a mapping, got list"),
        ({"checkpoints": "k"}, TypeError, "checkpoints must be a mapping, got str"),
        ({"on_checkpoint": 3}, TypeError, "on_checkpoint must be callable, got 3"),
    ],
)
async def test_submit_checks_argument_types(
    argument: dict[str, Any], error: type[Exception], message: str
) -> None:
    """submit() names an argument of the wrong type at once, and starts no goal."""

    @ov.leaf
    async def noop(task: ov.Task, ctx: ov.Context) -> None:
        return None

    async with ov.Tree("t", ov.Tactical("team", children=[noop])).running() as runner:
        with pytest.raises(error, match=message):
            await runner.submit("go", **argument)
        assert runner.in_flight == ()


async def test_failure_cancels_siblings_before_the_outcome(autojump_clock: trio.abc.Clock) -> None:
    """When a step fails for good, its running siblings are cancelled and have finished
    (finally blocks run) before the goal's outcome is available: nothing is orphaned."""
    cleaned: list[float] = []

    @ov.leaf
    async def mixed(task: ov.Task, ctx: ov.Context) -> None:
        if task.step == "bad":
            await trio.sleep(2)
            raise ov.Fatal("no")
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(trio.current_time())

    plan = [ov.Step("bad", "x"), ov.Step("long1", "y"), ov.Step("long2", "z")]
    tree = ov.Tree("t", ov.Tactical("team", children=[mixed], plan=plan))
    async with tree.running() as runner:
        handle = await runner.submit("go")
        outcome = await handle.outcome()
        assert cleaned == [2.0, 2.0]
    assert outcome.status is ov.Status.FAILED


async def test_function_leaf_concurrency_limit(autojump_clock: trio.abc.Clock) -> None:
    """A function leaf with concurrency=1 runs one call at a time across goals."""

    @ov.leaf(concurrency=1)
    async def single(task: ov.Task, ctx: ov.Context) -> float:
        await trio.sleep(1)
        return trio.current_time()

    tree = ov.Tree("t", ov.Tactical("team", children=[single]))
    async with tree.running() as runner:
        handles = [await runner.submit("go") for _ in range(3)]
        ends = sorted([(await h.outcome()).output for h in handles])
    assert ends == [1.0, 2.0, 3.0]
