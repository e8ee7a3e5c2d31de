"""What an outcome's step records and failure chain say (what ``overstory run`` prints)."""

from __future__ import annotations

import gc
import random

import pytest
import trio.testing

import overstory as ov
from overstory._errors import CandidatesExhausted
from overstory.hierarchy._context import Memory
from overstory.supervisors._runtime import GoalRun, Runtime
from overstory.telemetry import NULL_INSTRUMENTATION

NO_JITTER = ov.Backoff(initial=1.0, cap=10.0, jitter=0.0)


async def test_a_teams_escalation_is_in_the_failure_chain_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The parent does not record a child team's escalation a second time."""

    @ov.leaf
    async def broken(task: ov.Task, ctx: ov.Context) -> None:
        raise ValueError("down")

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            retry=ov.Retry(attempts=1),
            children=[
                ov.Tactical(
                    "team", children=[broken], retry=ov.Retry(attempts=2, backoff=NO_JITTER)
                )
            ],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert [(f.path, f.error_type) for f in outcome.failures] == [
        ("t/boss/team/broken", "ValueError"),
        ("t/boss/team/broken", "ValueError"),
        ("t/boss/team", "CandidatesExhausted"),
        ("t/boss", "CandidatesExhausted"),
    ]


async def test_recorded_knows_an_error_by_identity_while_the_goal_runs() -> None:
    """An error recorded and dropped cannot make a new error at its address look recorded."""
    run = GoalRun(
        goal_id="g",
        goal="go",
        runtime=Runtime(
            tree="t",
            instrumentation=NULL_INSTRUMENTATION,
            reviewer=None,
            on_event=None,
            rng=random.Random(0),
        ),
        memory=Memory(),
        started=0.0,
    )
    fresh: list[CandidatesExhausted] = []
    for _ in range(50):
        run.fail(path="p", layer="leaf", step="s", attempt=1, error=ValueError("x"))
        gc.collect()
        fresh.append(CandidatesExhausted("p", "s", "new"))
    assert not any(run.recorded(error) for error in fresh)


async def test_a_steps_record_spans_all_its_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``started`` and ``duration`` cover the retries and their backoff, not the last try."""
    calls = 0

    @ov.leaf
    async def flaky(task: ov.Task, ctx: ov.Context) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("again")
        return "ok"

    tree = ov.Tree(
        "t", ov.Tactical("team", children=[flaky], retry=ov.Retry(attempts=3, backoff=NO_JITTER))
    )
    outcome = await tree.run("go")
    [record] = outcome.steps
    assert record.attempts == 3
    assert record.started == pytest.approx(0.0)
    assert record.duration == pytest.approx(1.0 + 2.0)


async def test_a_teams_records_for_fan_out_items_carry_the_item() -> None:
    """A team working on item ``i`` of its parent's fan-out records (and passes on) ``i``."""
    seen: list[int | None] = []

    @ov.leaf
    async def double(task: ov.Task, ctx: ov.Context) -> int:
        seen.append(task.item)
        value: int = task.input
        return value * 2

    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("each", "double it", for_each="input")],
            children=[ov.Tactical("team", children=[double])],
        ),
    )
    outcome = await tree.run("go", input=[1, 2, 3])
    assert outcome.output == [2, 4, 6]
    assert sorted(seen, key=str) == [0, 1, 2]
    team = sorted((r.item, r.agent) for r in outcome.steps if r.supervisor == "t/boss/team")
    assert team == [(i, "t/boss/team/double") for i in range(3)]
