"""Semantic 11: outcomes are complete records, and tasks, steps and outcomes round-trip
through JSON with cattrs."""

from __future__ import annotations

from typing import Any

import cattrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from support import Calls, failing_leaf

import overstory as ov

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


async def test_outcome_records_steps_and_failures(autojump_clock: trio.abc.Clock) -> None:
    """The outcome has status, output, one record per step at each supervisor, and the
    ordered failure chain with formatted tracebacks."""
    calls = Calls()
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("a", "x"), ov.Step("b", "y", after=["a"])],
            children=[
                ov.Tactical(
                    "team",
                    children=[failing_leaf("w", calls, fail=1)],
                    retry=ov.Retry(attempts=2, backoff=ov.Backoff(initial=1.0, jitter=0.0)),
                )
            ],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.SUCCEEDED
    assert outcome.tree == "t"
    records = [(s.supervisor, s.step, s.agent, s.attempts, s.status) for s in outcome.steps]
    assert records == [
        ("t/boss/team", "a", "t/boss/team/w", 2, ov.Status.SUCCEEDED),
        ("t/boss", "a", "t/boss/team", 1, ov.Status.SUCCEEDED),
        ("t/boss/team", "b", "t/boss/team/w", 1, ov.Status.SUCCEEDED),
        ("t/boss", "b", "t/boss/team", 1, ov.Status.SUCCEEDED),
    ]
    assert outcome.steps[1].duration == 1.0
    (failure,) = outcome.failures
    assert (failure.path, failure.layer, failure.step, failure.attempt) == (
        "t/boss/team/w",
        "leaf",
        "a",
        1,
    )
    assert failure.traceback.startswith("Traceback")
    assert failure.at == 0.0
    assert outcome.usage.total.attempts == 3
    assert outcome.started_at > 1_600_000_000


async def test_outcome_round_trips_through_json(autojump_clock: trio.abc.Clock) -> None:
    """to_json / from_json reproduce an outcome exactly, failures and usage included."""
    calls = Calls()
    tree = ov.Tree("t", ov.Tactical("team", children=[failing_leaf("w", calls)]))
    outcome = await tree.run("go", input={"k": [1, 2]})
    assert outcome.status is ov.Status.FAILED
    assert ov.from_json(ov.Outcome, ov.to_json(outcome)) == outcome


@given(
    goal=st.text(min_size=1, max_size=20),
    value=json_values,
    skills=st.frozensets(st.text(min_size=1, max_size=4), max_size=3),
)
def test_task_and_step_round_trip(goal: str, value: Any, skills: frozenset[str]) -> None:
    """Any task and step with JSON values survives to_json/from_json unchanged."""
    task = ov.Task(goal=goal, goal_id="g", input=value, step="s", skills=skills, item=2)
    assert ov.from_json(ov.Task, ov.to_json(task)) == task
    step = ov.Step("s", goal, after=["a"], skills=skills, for_each="input.x", review=True)
    assert ov.from_json(ov.Step, ov.to_json(step)) == step


def test_structuring_errors_name_the_field() -> None:
    """Bad JSON for a record fails with a cattrs error naming the field."""
    with pytest.raises(cattrs.ClassValidationError) as info:
        ov.from_json(ov.Task, '{"goal": 5, "goal_id": "g", "unknown": 1}')
    text = repr(info.value.exceptions) + str(cattrs.transform_error(info.value))
    assert "unknown" in text


def test_handoff_round_trips_with_and_without_input() -> None:
    """A hand-off keeps the difference between no input and input=None."""
    same, none = ov.Handoff(to="x"), ov.Handoff(to="x", input=None)
    assert '"input"' not in ov.to_json(same)
    assert '"input": null' in ov.to_json(none)
    assert ov.from_json(ov.Handoff, ov.to_json(same)) == same
    assert ov.from_json(ov.Handoff, ov.to_json(none)) == none


def test_failure_traceback_keeps_the_chain() -> None:
    """A failure record's traceback is the standard text (without column carets):
    every frame, the chained cause, and the exception line."""
    from overstory.supervisors._runtime import format_traceback

    def inner() -> None:
        raise ValueError("inner problem")

    def outer() -> None:
        try:
            inner()
        except ValueError as exc:
            raise KeyError("outer problem") from exc

    try:
        outer()
    except KeyError as exc:
        text = format_traceback(exc)
    assert text.startswith("Traceback (most recent call last):\n")
    assert "in inner\n" in text
    assert "in outer\n" in text
    assert "ValueError: inner problem\n" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert text.endswith("KeyError: 'outer problem'\n")
    assert "^^^" not in text
