"""Semantic 6 and GUIDE scenarios 4-6: one_for_one, one_for_all and rest_for_one on plans."""

from __future__ import annotations

from typing import Any

import trio
from support import events_of

import overstory as ov

NO_WAIT = ov.Retry(attempts=3, backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0))


def plan_tree(strategy: str, fail_step: str, failures: int = 1) -> tuple[ov.Tree, list[str]]:
    """Steps a → b → c plus an independent d; ``fail_step`` fails ``failures`` times.
    Every started run is logged as 'name', every finished one as 'name done'."""
    log: list[str] = []
    failed: dict[str, int] = {}

    async def work(task: ov.Task, ctx: ov.Context) -> Any:
        step = task.step
        assert step is not None
        log.append(step)
        # d lasts longer, so it is still running when another step fails.
        await trio.sleep(10 if step == "d" else 1)
        if step == fail_step and failed.get(step, 0) < failures:
            failed[step] = failed.get(step, 0) + 1
            raise RuntimeError(f"{step} failed")
        log.append(f"{step} done")
        return {"step": step, "saw": sorted(ctx.outputs)}

    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[ov.FunctionLeaf(fn=work, name="worker")],
            plan=[
                ov.Step("a", "first"),
                ov.Step("b", "second", after=["a"]),
                ov.Step("d", "independent"),
                ov.Step("c", "third", after=["b"]),
            ],
            strategy=strategy,
            retry=NO_WAIT,
        ),
    )
    return tree, log


async def test_one_for_one_reruns_only_the_failed_step(autojump_clock: trio.abc.Clock) -> None:
    """one_for_one: b fails once and only b runs again; d is untouched."""
    tree, log = plan_tree("one_for_one", "b")
    outcome = await tree.run("go")
    assert outcome.ok
    assert log.count("a") == 1
    assert log.count("d") == 1
    assert log.count("c") == 1
    assert log.count("b") == 2


async def test_one_for_all_reruns_the_whole_plan(autojump_clock: trio.abc.Clock) -> None:
    """one_for_all: when b fails, running d is cancelled, done a is dropped, and every step
    runs again in dependency order."""
    events: list[ov.SupervisionEvent] = []
    tree, log = plan_tree("one_for_all", "b")
    outcome = await tree.run("go", on_event=events.append)
    assert outcome.ok
    # First run: a and d start together (in either order); d is still running when b fails.
    assert sorted(log[:2]) == ["a", "d"]
    assert log[2:4] == ["a done", "b"]
    # The re-run starts from scratch, in dependency order.
    assert sorted(log[4:6]) == ["a", "d"]
    assert log[6:] == ["a done", "b", "b done", "c", "c done", "d done"]
    (restart,) = events_of(events, ov.EventKind.GROUP_RESTART)
    assert restart.step == "b"
    assert "re-running a, b, d, c" in restart.message


async def test_rest_for_one_reruns_failed_and_later_steps(autojump_clock: trio.abc.Clock) -> None:
    """rest_for_one: b fails; b and every step after it in plan order (d, c) re-run; a,
    earlier in plan order, keeps its output and is not run again."""
    tree, log = plan_tree("rest_for_one", "b")
    outcome = await tree.run("go")
    assert outcome.ok
    assert log.count("a") == 1
    assert log.count("b") == 2
    assert log.count("d") == 2  # cancelled as a bystander, then re-run
    assert log.count("c") == 1  # never started before the failure
    assert log.index("d done") > log.index("b done")


async def test_bystanders_are_not_counted_as_failures(autojump_clock: trio.abc.Clock) -> None:
    """Steps cancelled by a group restart add nothing to the failure chain, the intensity
    window or their breaker."""
    tree, _log = plan_tree("one_for_all", "b")
    async with tree.running() as runner:
        handle = await runner.submit("go")
        outcome = await handle.outcome()
        health = {h.path: h for h in runner.health()}
        team = runner.root
        assert team.gate.recent_failures(trio.current_time()) == 1
    assert [f.step for f in outcome.failures] == ["b"]
    assert health["t/team/worker"].failed == 1
    assert health["t/team/worker"].breaker == "closed"


async def test_group_rerun_failing_part_way_counts_once_per_failure(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A one_for_all re-run in which b fails again tears down what it started, and each
    failure counts once: two failures, two restarts, three runs of a."""
    events: list[ov.SupervisionEvent] = []
    tree, log = plan_tree("one_for_all", "b", failures=2)
    outcome = await tree.run("go", on_event=events.append)
    assert outcome.ok
    assert [f.step for f in outcome.failures] == ["b", "b"]
    assert len(events_of(events, ov.EventKind.GROUP_RESTART)) == 2
    assert log.count("a") == 3
    assert log.count("d done") == 1


async def test_group_restart_escalates_when_attempts_run_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Under one_for_all the failing step still has only `attempts` tries; then the goal fails
    and nothing it started is left running."""
    tree, log = plan_tree("one_for_all", "b", failures=10)
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert log.count("b") == 3
    assert [f.error_type for f in outcome.failures][-1] == "CandidatesExhausted"


async def test_completed_steps_keep_outputs_under_one_for_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Outputs of steps that are not re-run are kept and handed to dependants."""
    tree, log = plan_tree("one_for_one", "c")
    outcome = await tree.run("go")
    assert outcome.ok
    assert outcome.output["c"] == {"step": "c", "saw": ["b"]}
    assert log.count("a") == 1
