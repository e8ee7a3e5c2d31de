"""The runtime's unchecked constructors build exactly what the checked ones build."""

from __future__ import annotations

import attrs
import pytest

import overstory as ov
from overstory._trusted import trusted_constructor
from overstory.hierarchy._budget import Usage
from overstory.hierarchy._context import Memory
from overstory.hierarchy._plan import Step


def test_task_context_and_record_match_their_checked_constructors() -> None:
    """Same fields give an equal object with the same hash and repr, field by field."""
    task = ov.Task(goal="g", goal_id="id", input=(1, 2), step="s", skills={"a"}, to="x", item=2)
    usage = Usage()
    memory = Memory()
    context = ov.Context(
        task=task,
        goal="g",
        goal_id="id",
        path="t/team/leaf",
        attempt=3,
        outputs={"prev": 1},
        memory=memory,
        feedback=("again",),
        layer="leaf",
        usage=usage,
    )
    record = ov.StepRecord(
        supervisor="t/team",
        step="s",
        status=ov.Status.SUCCEEDED,
        agent="t/team/leaf",
        attempts=2,
        runs=1,
        item=2,
        started=0.5,
        duration=1.5,
        review="approved",
        resumed=False,
    )
    for checked in (task, context, record):
        cls = type(checked)
        fields = [getattr(checked, field.name) for field in attrs.fields(cls)]
        built = trusted_constructor(cls)(*fields)
        assert type(built) is cls
        assert built == checked
        assert repr(built) == repr(checked)
        if cls is not ov.Context:  # a context holds a Memory, which is not hashable
            assert hash(built) == hash(checked)


def test_what_it_builds_is_frozen_like_what_init_builds() -> None:
    """A built record refuses assignment and deletion, as the checked one does."""
    task = trusted_constructor(ov.Task)("g", "id", None, None, frozenset(), None, None, 0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.goal = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del task.goal  # type: ignore[misc]
    assert task.goal == "g"


def test_a_missing_field_is_a_type_error() -> None:
    """Every field is required: a field added to the class breaks every stale call site."""
    make = trusted_constructor(ov.Task)
    with pytest.raises(TypeError, match="handoffs"):
        make("g", "id", None, None, frozenset(), None, None)


def test_classes_it_cannot_build_faithfully_are_refused() -> None:
    """A cached hash, a post-init or a class without slots is refused, naming the class."""

    @attrs.define(slots=False)
    class Plain:
        x: int

    with pytest.raises(TypeError, match="Step does more"):
        trusted_constructor(Step)  # caches its hash
    with pytest.raises(TypeError, match="Handoff does more"):
        trusted_constructor(ov.Handoff)  # validates in __attrs_post_init__
    with pytest.raises(TypeError, match="Plain is not a slotted attrs class"):
        trusted_constructor(Plain)
    with pytest.raises(TypeError, match="int is not a slotted attrs class"):
        trusted_constructor(int)
