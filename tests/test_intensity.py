"""Semantic 7 and GUIDE scenarios 2-3: restart intensity per supervisor, breakers per child."""

from __future__ import annotations

import trio
from support import Calls, events_of, failing_leaf

import overstory as ov

ONCE = ov.Retry(attempts=1)


async def run_goals(tree: ov.Tree, count: int, spacing: float, **kw: object) -> list[ov.Outcome]:
    """Run ``count`` goals one after another, ``spacing`` seconds apart, on one runner."""
    outcomes = []
    async with tree.running(**kw) as runner:  # type: ignore[arg-type]
        for _ in range(count):
            handle = await runner.submit("go")
            outcomes.append(await handle.outcome())
            await trio.sleep(spacing)
    return outcomes


def flaky_team(calls: Calls, intensity: ov.Intensity) -> ov.Tree:
    return ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[failing_leaf("a", calls), failing_leaf("b", calls, fail=0)],
            retry=ONCE,
            intensity=intensity,
            breaker=None,
        ),
    )


def loop_and_spare(calls: Calls, crash: ov.FunctionLeaf, intensity: ov.Intensity) -> ov.Tree:
    """A strategic boss with two teams for the same step: ``loop`` (the leaf ``crash``,
    retried 10 times under ``intensity``) ranked first, then ``spare`` (a leaf "ok")."""
    return ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("s", "process the order")],
            children=[
                ov.Tactical(
                    "loop",
                    "processes orders",
                    children=[crash],
                    retry=ov.Retry(attempts=10, backoff=ov.Backoff(initial=0.1, cap=0.1)),
                    intensity=intensity,
                ),
                ov.Tactical(
                    "spare", "processes orders", children=[failing_leaf("ok", calls, fail=0)]
                ),
            ],
        ),
    )


async def test_failures_spaced_beyond_window_are_survived(autojump_clock: trio.abc.Clock) -> None:
    """N failures, each alone in its window, never trip the supervisor."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = flaky_team(calls, ov.Intensity(max_failures=1, within=10.0))
    outcomes = await run_goals(tree, 5, spacing=11.0, on_event=events.append)
    assert all(o.ok for o in outcomes)
    assert events_of(events, ov.EventKind.TRIP) == []
    assert calls.names() == ["a", "b"] * 5


async def test_one_failure_over_the_limit_escalates_once(autojump_clock: trio.abc.Clock) -> None:
    """max_failures=2: the third failure inside the window trips the supervisor exactly once,
    and that goal escalates with the cause chained instead of reassigning."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = flaky_team(calls, ov.Intensity(max_failures=2, within=60.0, cooldown=30.0))
    outcomes = await run_goals(tree, 3, spacing=1.0, on_event=events.append)
    assert [o.status for o in outcomes] == [
        ov.Status.SUCCEEDED,
        ov.Status.SUCCEEDED,
        ov.Status.FAILED,
    ]
    [trip] = events_of(events, ov.EventKind.TRIP)
    # The trip names the failure that tripped it: its goal, step, agent and error type.
    assert (trip.path, trip.goal_id, trip.step, trip.agent, trip.error_type) == (
        "t/team",
        outcomes[-1].goal_id,
        "team",
        "t/team/a",
        "RuntimeError",
    )
    last = outcomes[-1].failures
    assert [f.error_type for f in last] == ["RuntimeError", "SupervisorTripped"]
    assert calls.names() == ["a", "b", "a", "b", "a"]


async def test_tripped_supervisor_rejects_new_work_then_probes(
    autojump_clock: trio.abc.Clock,
) -> None:
    """While tripped new goals escalate without running; after the cooldown one probe runs
    and its success closes the supervisor."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = flaky_team(calls, ov.Intensity(max_failures=0, within=60.0, cooldown=30.0))
    async with tree.running(on_event=events.append) as runner:
        first = await (await runner.submit("go")).outcome()  # a fails: trip
        rejected = await (await runner.submit("go")).outcome()
        await trio.sleep(30.0)
        probe = await (await runner.submit("go")).outcome()
    assert first.status is ov.Status.FAILED
    assert rejected.status is ov.Status.FAILED
    assert [f.error_type for f in rejected.failures] == ["SupervisorTripped"]
    assert calls.names() == ["a", "a"]  # nothing ran for the rejected goal; probe: a fails...
    assert probe.status is ov.Status.FAILED
    kinds = [e.kind for e in events]
    assert kinds.count(ov.EventKind.TRIP_PROBE) == 1
    assert kinds.count(ov.EventKind.TRIP) == 2  # the first trip and the failed probe


async def test_successful_probe_resets(autojump_clock: trio.abc.Clock) -> None:
    """A probe that succeeds closes the supervisor: later goals run normally."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[failing_leaf("a", calls, fail=1)],
            retry=ONCE,
            intensity=ov.Intensity(max_failures=0, within=60.0, cooldown=5.0),
        ),
    )
    async with tree.running(on_event=events.append) as runner:
        assert not (await (await runner.submit("go")).outcome()).ok
        await trio.sleep(5.0)
        assert (await (await runner.submit("go")).outcome()).ok
        assert (await (await runner.submit("go")).outcome()).ok
    assert [e.kind for e in events].count(ov.EventKind.TRIP_RESET) == 1


async def test_crash_looping_leaf_trips_team_parent_handles_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Scenario 3: a crash-looping leaf trips its tactical supervisor; the strategic parent
    sees one failure of that team and reassigns the step; the sibling team is untouched."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = loop_and_spare(
        calls, failing_leaf("crash", calls), ov.Intensity(max_failures=3, within=60.0)
    )
    async with tree.running(on_event=events.append) as runner:
        outcome = await (await runner.submit("go")).outcome()
        health = {h.path: h for h in runner.health()}
    assert outcome.ok
    assert calls.names() == ["crash"] * 4 + ["ok"]
    trips = events_of(events, ov.EventKind.TRIP)
    assert [e.path for e in trips] == ["t/boss/loop"]
    assert [(e.path, e.agent) for e in events_of(events, ov.EventKind.REASSIGN)] == [
        ("t/boss", "t/boss/loop")
    ]
    assert health["t/boss"].tripped is False
    assert health["t/boss/loop"].tripped is True
    assert health["t/boss/loop"].failed == 1  # as the parent saw it: one failed hand-over
    assert health["t/boss/spare"].failed == 0


async def test_parent_routing_sees_a_child_trip_and_its_cooldown_end(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A team tripped during one goal is skipped by its parent for the next goals, and
    offered again (as the probe) once its cooldown is over: routing remembers nothing stale."""
    calls = Calls()
    tree = loop_and_spare(
        calls,
        failing_leaf("crash", calls, fail=3),
        ov.Intensity(max_failures=2, within=60.0, cooldown=30.0),
    )
    async with tree.running() as runner:
        tripping = await (await runner.submit("go")).outcome()
        after = await (await runner.submit("go")).outcome()
        await trio.sleep(30.0)
        assert (await (await runner.submit("go")).outcome()).ok
    # Loop's crash leaf fails 3 times (trip), spare serves goals 1 and 2, then the probe
    # after the cooldown reaches loop again, whose leaf now succeeds.
    assert calls.names() == ["crash"] * 3 + ["ok", "ok", "crash"]
    assert [f.error_type for f in tripping.failures][-1] == "SupervisorTripped"
    assert after.ok
    assert after.failures == ()  # not handed to loop only to bounce off its gate


async def test_breaker_opens_and_routing_skips_child(autojump_clock: trio.abc.Clock) -> None:
    """After `failures` failures in a row a child's breaker opens and routing skips it until
    the cooldown is over; then one trial closes it again on success."""
    calls = Calls()
    events: list[ov.SupervisionEvent] = []
    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[failing_leaf("a", calls, fail=2), failing_leaf("b", calls, fail=0)],
            retry=ONCE,
            breaker=ov.Breaker(failures=2, cooldown=20.0),
            intensity=ov.Intensity(max_failures=100),
        ),
    )
    async with tree.running(on_event=events.append) as runner:
        for _ in range(3):
            assert (await (await runner.submit("go")).outcome()).ok
        states = {h.path: h.breaker for h in runner.health()}
        await trio.sleep(20.0)
        assert (await (await runner.submit("go")).outcome()).ok
        after = {h.path: h.breaker for h in runner.health()}
    # goal 1: a fails, b; goal 2: a fails (opens), b; goal 3: a skipped, b; goal 4: a trial ok.
    assert calls.names() == ["a", "b", "a", "b", "b", "a"]
    assert states["t/team/a"] == "open"
    assert after["t/team/a"] == "closed"
    kinds = [e.kind for e in events if e.kind.value.startswith("breaker")]
    assert kinds == [
        ov.EventKind.BREAKER_OPEN,
        ov.EventKind.BREAKER_HALF_OPEN,
        ov.EventKind.BREAKER_CLOSE,
    ]


async def test_all_children_open_means_no_candidate(autojump_clock: trio.abc.Clock) -> None:
    """When every child's breaker is open the step escalates at once with NoCandidate."""
    calls = Calls()
    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[failing_leaf("a", calls)],
            retry=ONCE,
            breaker=ov.Breaker(failures=1, cooldown=60.0),
            intensity=ov.Intensity(max_failures=100),
        ),
    )
    outcomes = await run_goals(tree, 2, spacing=1.0)
    assert [f.error_type for f in outcomes[1].failures] == ["NoCandidate"]
    assert calls.names() == ["a"]
