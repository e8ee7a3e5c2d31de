"""Semantic 13: human review at hand-offs: approve, reject with feedback, edit."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import overstory as ov


def scripted(*decisions: ov.Approve | ov.Reject | ov.Edit) -> tuple[Any, list[ov.ReviewRequest]]:
    """A reviewer answering ``decisions`` in order and recording every request."""
    requests: list[ov.ReviewRequest] = []
    queue = list(decisions)

    async def reviewer(request: ov.ReviewRequest) -> ov.Approve | ov.Reject | ov.Edit:
        requests.append(request)
        return queue.pop(0)

    return reviewer, requests


@ov.leaf
async def drafter(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    return {"draft": len(ctx.feedback), "feedback": list(ctx.feedback)}


@ov.leaf
async def sender(task: ov.Task, ctx: ov.Context) -> Any:
    return {"sent": ctx.outputs["draft"]}


TREE = ov.Tree(
    "t",
    ov.Tactical(
        "team",
        children=[drafter, sender],
        plan=[
            ov.Step("draft", "draft it", to="drafter", review=True),
            ov.Step("send", "send it", to="sender", after=["draft"]),
        ],
    ),
)


async def test_approve_hands_the_output_on(autojump_clock: trio.abc.Clock) -> None:
    """An approved output reaches the dependent step unchanged."""
    reviewer, requests = scripted(ov.Approve())
    outcome = await TREE.run("go", reviewer=reviewer)
    assert outcome.output["send"] == {"sent": {"draft": 0, "feedback": []}}
    (request,) = requests
    assert (request.path, request.step, request.agent, request.round) == (
        "t/team", "draft", "t/team/drafter", 1
    )  # fmt: skip
    assert request.output == {"draft": 0, "feedback": []}
    assert [s.review for s in outcome.steps if s.step == "draft"] == ["approved"]


async def test_reject_reruns_with_feedback(autojump_clock: trio.abc.Clock) -> None:
    """A rejection re-runs the step with the feedback in ctx; the next approval hands it on."""
    reviewer, requests = scripted(ov.Reject(feedback="shorter"), ov.Approve())
    outcome = await TREE.run("go", reviewer=reviewer)
    assert outcome.output["send"] == {"sent": {"draft": 1, "feedback": ["shorter"]}}
    assert [r.round for r in requests] == [1, 2]
    assert outcome.failures == ()


async def test_edit_replaces_the_output(autojump_clock: trio.abc.Clock) -> None:
    """An edit hands on the reviewer's output instead of the agent's."""
    reviewer, _ = scripted(ov.Edit(output={"draft": "by hand"}))
    outcome = await TREE.run("go", reviewer=reviewer)
    assert outcome.output["send"] == {"sent": {"draft": "by hand"}}
    assert [s.review for s in outcome.steps if s.step == "draft"] == ["edited"]


async def test_rejections_are_bounded(autojump_clock: trio.abc.Clock) -> None:
    """max_review_rounds rejections in a row fail the goal with ReviewRejected."""
    reviewer, requests = scripted(*[ov.Reject(feedback=f"no {i}") for i in range(3)])
    outcome = await TREE.run("go", reviewer=reviewer)
    assert outcome.status is ov.Status.FAILED
    assert len(requests) == 3
    assert outcome.failures[0].error_type == "ReviewRejected"
    assert "last feedback: no 2" in outcome.failures[0].message


async def test_tree_with_review_points_needs_a_reviewer() -> None:
    """Starting a tree that has review points without a reviewer fails at start, clearly."""
    with pytest.raises(ov.ConfigurationError, match="no reviewer was given"):
        async with TREE.running():
            pytest.fail("must not start")


async def test_supervisor_level_review(autojump_clock: trio.abc.Clock) -> None:
    """review=True on a supervisor reviews its aggregated output before it is handed up."""
    reviewer, requests = scripted(ov.Reject(feedback="again"), ov.Approve())
    tree = ov.Tree(
        "t",
        ov.Strategic("boss", children=[ov.Tactical("team", children=[drafter], review=True)]),
    )
    outcome = await tree.run("go", reviewer=reviewer)
    assert outcome.output == {"draft": 1, "feedback": ["again"]}
    assert [(r.path, r.round) for r in requests] == [("t/boss/team", 1), ("t/boss/team", 2)]


async def test_reviewer_that_raises_fails_the_goal(autojump_clock: trio.abc.Clock) -> None:
    """A reviewer error is a fatal failure naming the reviewer's exception."""

    async def broken(request: ov.ReviewRequest) -> ov.Approve:
        raise RuntimeError("ui crashed")

    outcome = await TREE.run("go", reviewer=broken)
    assert outcome.status is ov.Status.FAILED
    assert "the reviewer failed: RuntimeError('ui crashed')" in (outcome.error or "")


async def test_auto_approve_approves() -> None:
    """ov.auto_approve approves everything."""
    outcome = await TREE.run("go", reviewer=ov.auto_approve)
    assert outcome.ok
