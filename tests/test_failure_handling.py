"""Semantic 5: retry on the same child with backoff, then reassign, then escalate."""

from __future__ import annotations

import itertools

import pytest
import trio
from support import Calls, events_of, failing_leaf

import overstory as ov

FAST = ov.Retry(attempts=3, backoff=ov.Backoff(initial=1.0, cap=4.0, jitter=0.0))


def team(*children: object, retry: ov.Retry = FAST, **kw: object) -> ov.Tactical:
    return ov.Tactical("team", "does the work", children=list(children), retry=retry, **kw)  # type: ignore[arg-type]


def red_and_blue(calls: Calls, **strategic: object) -> ov.Tree:
    """A strategic supervisor over two ticket teams: red's leaf always fails, blue's works."""
    return ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("s", "handle the ticket")],
            children=[
                ov.Tactical("red", "ticket team", children=[failing_leaf("r", calls)], retry=FAST),
                ov.Tactical(
                    "blue", "ticket team", children=[failing_leaf("b", calls, fail=0)], retry=FAST
                ),
            ],
            **strategic,  # type: ignore[arg-type]
        ),
    )


async def test_retry_then_success_on_same_child(autojump_clock: trio.abc.Clock) -> None:
    """A leaf that fails twice is retried on the same child and its third attempt wins."""
    calls = Calls()
    tree = ov.Tree("t", team(failing_leaf("a", calls, fail=2, result="ok")))
    outcome = await tree.run("work")
    assert outcome.status is ov.Status.SUCCEEDED
    assert outcome.output == "ok"
    assert calls.log == [("a", 1), ("a", 2), ("a", 3)]
    assert [f.attempt for f in outcome.failures] == [1, 2]


async def test_backoff_delays_follow_the_schedule(autojump_clock: trio.abc.Clock) -> None:
    """Retries wait initial·2ⁿ seconds (no jitter here) on trio's clock."""
    times: list[float] = []

    @ov.leaf
    async def a(task: ov.Task, ctx: ov.Context) -> str:
        times.append(trio.current_time())
        if len(times) < 3:
            raise RuntimeError("again")
        return "ok"

    outcome = await ov.Tree("t", team(a)).run("work")
    assert outcome.ok
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [1.0, 2.0]


async def test_reassign_after_attempts_exhausted(autojump_clock: trio.abc.Clock) -> None:
    """After `attempts` failures on one child the step goes to the next candidate."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = ov.Tree(
        "t",
        team(failing_leaf("a", calls), failing_leaf("b", calls, fail=0, result="from b")),
    )
    outcome = await tree.run("work", on_event=events.append)
    assert outcome.output == "from b"
    assert calls.log == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    (reassign,) = events_of(events, ov.EventKind.REASSIGN)
    assert (reassign.agent, reassign.next_agent) == ("t/team/a", "t/team/b")
    assert len(events_of(events, ov.EventKind.RETRY)) == 2
    (record,) = [s for s in outcome.steps if s.supervisor == "t/team"]
    assert (record.agent, record.attempts) == ("t/team/b", 4)


async def test_no_reassignment_escalates_once_the_routed_child_is_spent(
    autojump_clock: trio.abc.Clock,
) -> None:
    """With ``Retry(reassign=False)`` a unit stays on the child routing chose: after its
    attempts the supervisor escalates, and the next candidate is never called."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    retry = ov.Retry(attempts=2, backoff=FAST.backoff, reassign=False)
    tree = ov.Tree(
        "t",
        team(failing_leaf("a", calls), failing_leaf("b", calls, fail=0), retry=retry),
    )
    outcome = await tree.run("work", on_event=events.append)
    assert outcome.status is ov.Status.FAILED
    assert calls.log == [("a", 1), ("a", 2)]
    assert events_of(events, ov.EventKind.REASSIGN) == []
    chain = [(f.path, f.error_type) for f in outcome.failures]
    assert chain == [
        ("t/team/a", "RuntimeError"),
        ("t/team/a", "RuntimeError"),
        ("t/team", "Escalation"),
    ]
    assert "reassignment is off" in outcome.failures[-1].message


async def test_no_reassignment_keeps_an_escalated_step_off_the_other_teams(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A strategic supervisor with ``reassign=False`` escalates a team's escalation
    instead of handing the step to the next team, which never runs."""
    calls = Calls()
    tree = red_and_blue(calls, retry=ov.Retry(reassign=False))
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert calls.names() == ["r", "r", "r"]
    assert [f.path for f in outcome.failures][-2:] == ["t/boss/red", "t/boss"]


def test_reassign_must_be_a_bool() -> None:
    """``Retry(reassign=...)`` takes a bool only, so a typo cannot silently keep the default."""
    with pytest.raises(TypeError, match="reassign"):
        ov.Retry(reassign="no")  # type: ignore[arg-type]


async def test_escalation_at_root_fails_goal_with_chain(autojump_clock: trio.abc.Clock) -> None:
    """When every candidate fails the root escalates and the goal FAILS with the whole chain."""
    calls = Calls()
    tree = ov.Tree("t", team(failing_leaf("a", calls), failing_leaf("b", calls)))
    outcome = await tree.run("work")
    assert outcome.status is ov.Status.FAILED
    assert outcome.output is None
    chain = [(f.path, f.error_type, f.attempt) for f in outcome.failures]
    assert chain == [
        ("t/team/a", "RuntimeError", 1),
        ("t/team/a", "RuntimeError", 2),
        ("t/team/a", "RuntimeError", 3),
        ("t/team/b", "RuntimeError", 1),
        ("t/team/b", "RuntimeError", 2),
        ("t/team/b", "RuntimeError", 3),
        ("t/team", "CandidatesExhausted", 6),
    ]
    assert "RuntimeError: boom" in outcome.failures[0].traceback
    assert outcome.error is not None
    assert outcome.error.startswith("CandidatesExhausted")


async def test_parent_reassigns_escalated_step_to_another_team(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A team's escalation reaches the strategic parent, which hands the step to another team
    without retrying the failed team (it already retried)."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = red_and_blue(calls)
    outcome = await tree.run("go", on_event=events.append)
    assert outcome.ok
    assert calls.names() == ["r", "r", "r", "b"]
    reassigns = [(e.path, e.agent, e.next_agent) for e in events_of(events, ov.EventKind.REASSIGN)]
    assert reassigns == [("t/boss", "t/boss/red", "t/boss/blue")]
    escalations = [e.path for e in events_of(events, ov.EventKind.ESCALATE)]
    assert escalations == ["t/boss/red"]


async def test_fatal_skips_retries_and_reassignment(autojump_clock: trio.abc.Clock) -> None:
    """`ov.Fatal` fails the step at once: no retry, no other candidate, the goal FAILS."""
    calls = Calls()
    tree = ov.Tree(
        "t",
        team(
            failing_leaf("a", calls, error=lambda: ov.Fatal("bad input")),
            failing_leaf("b", calls, fail=0),
        ),
    )
    outcome = await tree.run("work")
    assert outcome.status is ov.Status.FAILED
    assert calls.log == [("a", 1)]
    assert [f.error_type for f in outcome.failures] == ["Fatal", "Escalation"]


async def test_configured_fatal_types_skip_retries(autojump_clock: trio.abc.Clock) -> None:
    """Exception types listed in `Retry.fatal` behave like `ov.Fatal`."""
    calls = Calls()
    retry = ov.Retry(attempts=5, fatal=(KeyError,))
    tree = ov.Tree("t", team(failing_leaf("a", calls, error=lambda: KeyError("k")), retry=retry))
    outcome = await tree.run("work")
    assert outcome.status is ov.Status.FAILED
    assert calls.log == [("a", 1)]


async def test_fatal_passes_through_every_level(autojump_clock: trio.abc.Clock) -> None:
    """A fatal failure deep in the tree is not reassigned to another team either."""
    calls = Calls()
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            children=[
                ov.Tactical(
                    "red", "x", children=[failing_leaf("r", calls, error=lambda: ov.Fatal("no"))]
                ),
                ov.Tactical("blue", "x", children=[failing_leaf("b", calls, fail=0)]),
            ],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert calls.names() == ["r"]


async def test_timed_out_attempt_is_a_failure_and_retried(autojump_clock: trio.abc.Clock) -> None:
    """An attempt past its leaf timeout is cancelled, recorded as AttemptTimeout, and retried."""
    attempts: list[int] = []

    @ov.leaf(timeout=5.0)
    async def slow(task: ov.Task, ctx: ov.Context) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await trio.sleep(100)
        return "second try"

    outcome = await ov.Tree("t", team(slow)).run("work")
    assert outcome.output == "second try"
    assert attempts == [1, 2]
    (failure,) = outcome.failures
    assert (failure.error_type, failure.path) == ("AttemptTimeout", "t/team/slow")


async def test_an_agent_that_swallows_its_timeout_has_still_timed_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A leaf that catches the Cancelled of its own timeout and returns late fails with
    AttemptTimeout and is retried: its late output is not a success."""
    attempts: list[int] = []

    @ov.leaf(timeout=1)
    async def stubborn(task: ov.Task, ctx: ov.Context) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            try:
                await trio.sleep(5)
            except trio.Cancelled:
                return "late"  # swallowed: the misbehaviour under test
        return "on time"

    outcome = await ov.Tree("t", team(stubborn)).run("work")
    assert outcome.output == "on time"
    assert attempts == [1, 2]
    (failure,) = outcome.failures
    assert failure.error_type == "AttemptTimeout"


async def test_cancelled_is_never_counted_or_retried(autojump_clock: trio.abc.Clock) -> None:
    """Cancelling a goal mid-attempt records no failure, no retry, and ends CANCELLED."""
    events: list[ov.SupervisionEvent] = []
    started = trio.Event()
    attempts: list[int] = []

    @ov.leaf
    async def hang(task: ov.Task, ctx: ov.Context) -> None:
        attempts.append(ctx.attempt)
        started.set()
        await trio.sleep_forever()

    tree = ov.Tree("t", team(hang))
    async with tree.running(on_event=events.append) as runner:
        handle = await runner.submit("work")
        await started.wait()
        handle.cancel()
        outcome = await handle.outcome()
        health = {h.path: h for h in runner.health()}
    assert outcome.status is ov.Status.CANCELLED
    assert outcome.failures == ()
    assert attempts == [1]
    assert events == []
    assert health["t/team/hang"].failed == 0
    assert health["t/team/hang"].in_flight == 0


async def test_the_root_counts_the_goals_that_succeeded_and_failed(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The root's health counts goals: succeeded, failed (a time-out too), in flight; a
    cancelled goal is neither a success nor a failure."""
    hold = trio.Event()

    @ov.leaf
    async def work(task: ov.Task, ctx: ov.Context) -> str:
        if task.input == "fail":
            raise ValueError("no")
        if task.input in ("slow", "hold"):
            await hold.wait()
        return "done"

    tree = ov.Tree("t", team(work, retry=ov.Retry(attempts=1)))
    async with tree.running() as runner:
        for input in ("ok", "ok", "fail"):
            await (await runner.submit("g", input=input)).outcome()
        await (await runner.submit("g", input="slow", timeout=1)).outcome()
        cancelled = await runner.submit("g", input="hold")
        await trio.sleep(0.1)
        cancelled.cancel()
        await cancelled.outcome()
        held = await runner.submit("g", input="hold")
        await trio.sleep(0.1)
        root = runner.health()[0]
        hold.set()
        await held.outcome()
    assert (root.path, root.in_flight, root.succeeded, root.failed) == ("t/team", 1, 2, 2)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
async def test_an_error_whose_str_raises_is_retried_and_recorded(
    autojump_clock: trio.abc.Clock, traced: bool
) -> None:
    """An error whose __str__ raises is recorded, retried and escalated like any other,
    its message saying that its str() failed."""
    calls = Calls()
    tree = ov.Tree("t", team(failing_leaf("a", calls, fail=5, error=_Unprintable)))
    telemetry = ov.telemetry.configure(exporter="none", record=True) if traced else None
    try:
        outcome = await tree.run(
            "work", instrumentation=telemetry.instrumentation if telemetry else None
        )
    finally:
        if telemetry is not None:
            await telemetry.aclose()
    assert outcome.status is ov.Status.FAILED
    assert [f.error_type for f in outcome.failures][:3] == ["_Unprintable"] * 3
    assert outcome.failures[0].message == "<str() of this _Unprintable raised RuntimeError>"
    assert outcome.error is not None
    assert "CandidatesExhausted" in outcome.error


@pytest.mark.parametrize("error", [ValueError("v"), ov.AttemptTimeout("p", "m")])
async def test_failure_records_name_the_error(
    autojump_clock: trio.abc.Clock, error: Exception
) -> None:
    """Each failed attempt appears in the chain with its type and message."""
    calls = Calls()
    tree = ov.Tree("t", team(failing_leaf("a", calls, fail=1, error=lambda: error)))
    outcome = await tree.run("work")
    assert outcome.ok
    (failure,) = outcome.failures
    assert failure.error_type == type(error).__name__
    assert failure.message == str(error)
    assert failure.layer == "leaf"
