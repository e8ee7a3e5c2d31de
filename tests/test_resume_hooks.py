"""What the core offers a durable runner: one key per unit of work, stable across resumes,
and the goal's memory while it runs."""

from __future__ import annotations

from typing import Any

import overstory as ov


def _recorder() -> tuple[dict[str, Any], Any]:
    saved: dict[str, Any] = {}

    async def on_checkpoint(key: str, output: Any) -> None:
        saved[key] = output

    return saved, on_checkpoint


def _fan_out_tree(runs: list[Any]) -> ov.Tree:
    @ov.leaf
    async def work(task: ov.Task, ctx: ov.Context) -> str:
        runs.append(task.input)
        return f"item {task.input}"

    team = ov.Tactical("team", children=[work], plan=[ov.Step("w", "work on it")])
    return ov.Tree(
        "t",
        ov.Strategic(
            "boss", children=[team], plan=[ov.Step("each", "do each one", for_each="input")]
        ),
    )


async def test_top_level_keys_are_path_hash_step_and_item() -> None:
    """Keys at the root plan are ``{path}#{step}`` and ``{path}#{step}[i]`` for fan-out items."""

    @ov.leaf
    async def echo(task: ov.Task, ctx: ov.Context) -> Any:
        return task.input

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            children=[echo],
            plan=[ov.Step("one", "first"), ov.Step("each", "per item", for_each="input")],
        ),
    )
    saved, on_checkpoint = _recorder()
    async with tree.running() as runner:
        handle = await runner.submit("g", input=[7, 8], on_checkpoint=on_checkpoint)
        assert (await handle.outcome()).ok
    assert saved == {"t/boss#one": [7, 8], "t/boss#each[0]": 7, "t/boss#each[1]": 8}


async def test_a_team_working_on_several_items_writes_one_key_per_item() -> None:
    """A nested plan prefixes its keys with the enclosing item's key, so items never collide."""
    runs: list[Any] = []
    saved, on_checkpoint = _recorder()
    async with _fan_out_tree(runs).running() as runner:
        handle = await runner.submit("g", input=[1, 2, 3], on_checkpoint=on_checkpoint)
        assert (await handle.outcome()).output == ["item 1", "item 2", "item 3"]
    assert {k: v for k, v in saved.items() if ">" in k} == {
        "t/boss#each[0]>t/boss/team#w": "item 1",
        "t/boss#each[1]>t/boss/team#w": "item 2",
        "t/boss#each[2]>t/boss/team#w": "item 3",
    }


async def test_resuming_from_nested_checkpoints_gives_each_item_its_own_output() -> None:
    """With only the team's checkpoints saved, a resumed goal runs no leaf and keeps items apart."""
    runs: list[Any] = []
    nested = {f"t/boss#each[{i}]>t/boss/team#w": f"item {i + 1}" for i in range(3)}
    async with _fan_out_tree(runs).running() as runner:
        handle = await runner.submit("g", input=[1, 2, 3], checkpoints=nested)
        outcome = await handle.outcome()
    assert outcome.output == ["item 1", "item 2", "item 3"]
    assert runs == []
    assert all(step.resumed for step in outcome.steps if step.supervisor == "t/boss/team")


async def test_a_step_rerun_after_rejection_gets_its_own_key() -> None:
    """The second run of a rejected step checkpoints under ``@2``; the first run's key stays."""
    decisions = iter([ov.Reject(feedback="shorter"), ov.Approve()])

    async def reviewer(request: ov.ReviewRequest) -> ov.Approve | ov.Reject:
        return next(decisions)

    @ov.leaf
    async def draft(task: ov.Task, ctx: ov.Context) -> str:
        return f"draft {len(ctx.feedback)}"

    tree = ov.Tree(
        "t", ov.Tactical("team", children=[draft], plan=[ov.Step("d", "draft", review=True)])
    )
    saved, on_checkpoint = _recorder()
    async with tree.running(reviewer=reviewer) as runner:
        handle = await runner.submit("g", on_checkpoint=on_checkpoint)
        assert (await handle.outcome()).output == "draft 1"
    assert saved == {"t/team#d": "draft 0", "t/team#d@2": "draft 1"}


async def test_replaying_stored_review_decisions_reruns_only_unfinished_work() -> None:
    """Resumed with run 1 checkpointed and round 1 rejected, only run 2 of the step executes."""
    requests: list[ov.ReviewRequest] = []
    stored: dict[tuple[str, int], ov.Reject | ov.Approve] = {
        ("t/team#d", 1): ov.Reject(feedback="shorter"),
        ("t/team#d", 2): ov.Approve(),
    }

    async def reviewer(request: ov.ReviewRequest) -> ov.Approve | ov.Reject:
        requests.append(request)
        return stored[request.key, request.round]

    feedback_seen: list[tuple[str, ...]] = []

    @ov.leaf
    async def draft(task: ov.Task, ctx: ov.Context) -> str:
        feedback_seen.append(ctx.feedback)
        return "short"

    tree = ov.Tree(
        "t", ov.Tactical("team", children=[draft], plan=[ov.Step("d", "draft", review=True)])
    )
    async with tree.running(reviewer=reviewer) as runner:
        handle = await runner.submit("g", checkpoints={"t/team#d": "long"})
        assert (await handle.outcome()).output == "short"
    assert feedback_seen == [("shorter",)]
    assert [(r.output, r.round) for r in requests] == [("long", 1), ("short", 2)]


async def test_review_keys_tell_fan_out_items_apart() -> None:
    """A reviewed step of a team that serves several items is asked once per item, by key."""
    keys: list[tuple[str, int]] = []

    async def reviewer(request: ov.ReviewRequest) -> ov.Approve:
        keys.append((request.key, request.round))
        return ov.Approve()

    @ov.leaf
    async def work(task: ov.Task, ctx: ov.Context) -> Any:
        return task.input

    team = ov.Tactical("team", children=[work], plan=[ov.Step("w", "work", review=True)])
    tree = ov.Tree(
        "t",
        ov.Strategic("boss", children=[team], plan=[ov.Step("each", "each", for_each="input")]),
    )
    async with tree.running(reviewer=reviewer) as runner:
        handle = await runner.submit("g", input=[1, 2])
        assert (await handle.outcome()).ok
    assert sorted(keys) == [
        ("t/boss#each[0]>t/boss/team#w", 1),
        ("t/boss#each[1]>t/boss/team#w", 1),
    ]


async def test_a_supervisor_review_rerun_keys_its_plan_by_round() -> None:
    """After a supervisor's own output is rejected, its re-run plan checkpoints under ``~2``."""
    decisions = iter([ov.Reject(feedback="again"), ov.Approve()])
    keys: list[str] = []

    async def reviewer(request: ov.ReviewRequest) -> ov.Approve | ov.Reject:
        keys.append(request.key)
        return next(decisions)

    @ov.leaf
    async def work(task: ov.Task, ctx: ov.Context) -> int:
        return len(ctx.feedback)

    tree = ov.Tree(
        "t",
        ov.Tactical("team", children=[work], plan=[ov.Step("w", "work")], review=True),
    )
    saved, on_checkpoint = _recorder()
    async with tree.running(reviewer=reviewer) as runner:
        handle = await runner.submit("g", on_checkpoint=on_checkpoint)
        assert (await handle.outcome()).output == 1
    assert saved == {"t/team#w": 0, "t/team~2>t/team#w": 1}
    assert keys == ["t/team", "t/team"]


async def test_a_handle_shows_the_goals_memory_while_it_runs() -> None:
    """``GoalHandle.memory()`` is a copy of the shared memory at the moment it is called."""
    seen: list[dict[str, Any]] = []
    handle: ov.GoalHandle | None = None

    @ov.leaf
    async def note(task: ov.Task, ctx: ov.Context) -> str:
        ctx.memory[task.step or "?"] = task.input
        return "ok"

    async def on_checkpoint(key: str, output: Any) -> None:
        assert handle is not None
        seen.append(handle.memory())

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss", children=[note], plan=[ov.Step("a", "a"), ov.Step("b", "b", after="a")]
        ),
    )
    async with tree.running() as runner:
        handle = await runner.submit("g", input=1, memory={"seed": 0}, on_checkpoint=on_checkpoint)
        outcome = await handle.outcome()
    assert seen == [{"seed": 0, "a": 1}, {"seed": 0, "a": 1, "b": 1}]
    assert handle.memory() == outcome.memory
    seen[0]["a"] = 99
    assert handle.memory()["a"] == 1


async def test_a_replan_checkpoints_its_steps_under_its_own_scope() -> None:
    """After a step escalates, the re-planned steps checkpoint under ``{path}^1>``."""

    @ov.leaf
    async def worker(task: ov.Task, ctx: ov.Context) -> str:
        if task.step == "risky":
            raise RuntimeError("no")
        return task.step or "?"

    async def plan(task: ov.Task, ctx: ov.Context) -> list[ov.Step]:
        if ctx.feedback:
            return [ov.Step("safe", "the safe way")]
        return [ov.Step("first", "first"), ov.Step("risky", "risky", after="first")]

    tree = ov.Tree(
        "t",
        ov.Strategic("boss", children=[worker], plan=plan, replans=1, retry=ov.Retry(attempts=1)),
    )
    saved, on_checkpoint = _recorder()
    async with tree.running() as runner:
        handle = await runner.submit("g", on_checkpoint=on_checkpoint)
        assert (await handle.outcome()).output == "safe"
    assert saved == {"t/boss#first": "first", "t/boss^1>t/boss#safe": "safe"}


async def test_a_checkpoint_that_fails_fails_the_goal_naming_it() -> None:
    """An on_checkpoint that raises (or is not async) ends the goal failed with a fatal
    escalation naming the unit and the error, without retrying the leaf."""
    runs: list[Any] = []

    @ov.leaf
    async def work(task: ov.Task, ctx: ov.Context) -> str:
        runs.append(task.input)
        return "out"

    async def disk_full(key: str, output: Any) -> None:
        raise OSError("disk full")

    def not_async(key: str, output: Any) -> None:
        pass

    tree = ov.Tree("t", ov.Tactical("team", children=[work]))
    async with tree.running() as runner:
        for hook, cause in ((disk_full, "OSError('disk full')"), (not_async, "TypeError")):
            runs.clear()
            handle = await runner.submit("g", on_checkpoint=hook)
            outcome = await handle.outcome()
            assert outcome.status is ov.Status.FAILED
            assert runs == [None]
            assert outcome.error is not None
            assert outcome.error.startswith(
                "Escalation: t/team: the output of team could not be checkpointed: "
            )
            assert cause in outcome.error
