"""GUIDE scenarios 2 and 10 as properties: the backoff schedule, the intensity window and
the breaker state machine, driven directly with explicit times."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import overstory as ov
from overstory.supervisors._gates import Admission, BreakerState, CircuitBreaker, IntensityGate

backoffs = st.builds(
    lambda initial, extra, multiplier, jitter: ov.Backoff(
        initial=initial, cap=initial + extra, multiplier=multiplier, jitter=jitter
    ),
    st.floats(0, 100),
    st.floats(0, 1000),
    st.floats(1, 4),
    st.floats(0, 1),
)


@given(backoff=backoffs, retry=st.integers(0, 200), u=st.floats(0, 1, exclude_max=True))
def test_backoff_follows_schedule_within_jitter_bounds(
    backoff: ov.Backoff, retry: int, u: float
) -> None:
    """delay(n) = min(cap, initial·multiplierⁿ)·(1 + jitter·u): never below the schedule,
    never above cap·(1 + jitter), and monotone in n."""
    base = backoff.base_delay(retry)
    assert base == pytest.approx(min(backoff.cap, backoff.initial * backoff.multiplier**retry))
    delay = backoff.delay(retry, u)
    assert base <= delay <= backoff.cap * (1 + backoff.jitter) + 1e-9
    assert backoff.base_delay(retry + 1) >= base


def test_backoff_schedule_is_closed_form_for_any_retry_count() -> None:
    """A flat or barely growing schedule answers for the billionth retry without stepping
    through the ones before it (a crash loop's restart n must not cost O(n))."""
    assert ov.Backoff(initial=0.1, cap=10.0, multiplier=1.0).base_delay(10**12) == 0.1
    assert ov.Backoff(initial=0.0, cap=10.0).base_delay(10**12) == 0.0
    slow = ov.Backoff(initial=0.1, cap=10.0, multiplier=1.0 + 1e-9)
    assert slow.base_delay(10**12) == 10.0
    assert slow.base_delay(10**9) == pytest.approx(0.1 * (1.0 + 1e-9) ** 10**9)


def test_backoff_doubles_from_initial_to_cap() -> None:
    """The default multiplier doubles: 0.1, 0.2, 0.4, ... capped at 1.0."""
    backoff = ov.Backoff(initial=0.1, cap=1.0, jitter=0.0)
    assert [backoff.delay(n, 0.5) for n in range(6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


async def test_restart_backoff_resets_after_healthy_run(autojump_clock: trio.abc.Clock) -> None:
    """An agent's restart delays grow while it crash-loops and reset after it ran healthy
    for reset_after seconds."""
    restarts: list[float] = []

    class Crashy(ov.Agent):
        """Crashes on demand."""

        backoff = ov.Backoff(initial=1.0, cap=100.0, jitter=0.0, reset_after=50.0)

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None:
            raise RuntimeError("crash")

    events: list[ov.SupervisionEvent] = []
    tree = ov.Tree("t", ov.Tactical("team", children=[Crashy], retry=ov.Retry(attempts=1)))
    async with tree.running(on_event=events.append) as runner:
        for pause in (0, 0, 0, 100):
            await trio.sleep(pause)
            await trio.sleep(10)  # let any restart finish
            await (await runner.submit("go")).outcome()
        await trio.sleep(10)
    restarts = [e.delay for e in events if e.kind is ov.EventKind.RESTART and e.delay is not None]
    assert restarts == [1.0, 2.0, 4.0, 1.0]


@given(
    limit=st.integers(0, 5),
    window=st.floats(1, 100),
    gaps=st.lists(st.floats(0, 50), min_size=1, max_size=30),
)
def test_intensity_trips_exactly_when_window_holds_more_than_limit(
    limit: int, window: float, gaps: list[float]
) -> None:
    """The gate trips on the first failure that makes more than `limit` failures fall
    within the last `window` seconds, and not before."""
    gate = IntensityGate(ov.Intensity(max_failures=limit, within=window))
    now = 0.0
    history: list[float] = []
    for gap in gaps:
        now += gap
        history.append(now)
        in_window = [t for t in history if t > now - window]
        tripped = gate.record_failure(now)
        assert tripped == (len(in_window) > limit)
        if tripped:
            assert gate.admit(now) is Admission.REJECT
            return
    assert gate.admit(now) is Admission.OPEN


def test_tripped_gate_admits_one_probe_after_cooldown() -> None:
    """After the cooldown exactly one probe is admitted; its outcome closes or re-trips."""
    gate = IntensityGate(ov.Intensity(max_failures=0, within=10.0, cooldown=5.0))
    assert gate.record_failure(0.0)
    assert gate.admit(4.9) is Admission.REJECT
    assert gate.admit(5.0) is Admission.PROBE
    assert gate.admit(5.0) is Admission.REJECT
    gate.probe_done(6.0, succeeded=False)
    assert gate.admit(10.9) is Admission.REJECT
    assert gate.admit(11.0) is Admission.PROBE
    gate.probe_done(11.0, succeeded=None)  # cancelled probe: the next task probes
    assert gate.admit(11.0) is Admission.PROBE
    gate.probe_done(12.0, succeeded=True)
    assert gate.admit(12.0) is Admission.OPEN
    assert not gate.tripped


def test_breaker_state_machine() -> None:
    """Closed → open after N failures in a row → half-open after the cooldown with one
    trial at a time → closed on success, open again on failure; a success resets the count."""
    breaker = CircuitBreaker(ov.Breaker(failures=2, cooldown=10.0))
    assert breaker.failure(0.0) is None
    assert breaker.success() is None
    assert breaker.failure(1.0) is None
    assert breaker.failure(2.0) is BreakerState.OPEN
    assert not breaker.available(5.0)
    assert breaker.refresh(11.9) is None
    assert breaker.refresh(12.0) is BreakerState.HALF_OPEN
    breaker.begin()
    assert not breaker.available(12.0)
    assert breaker.failure(12.5) is BreakerState.OPEN
    assert breaker.refresh(22.5) is BreakerState.HALF_OPEN
    breaker.begin()
    breaker.cancelled()
    assert breaker.available(22.5)
    breaker.begin()
    assert breaker.success() is BreakerState.CLOSED


def test_breaker_is_clean_only_while_closed_without_a_failure_since_the_last_success() -> None:
    """``clean`` (the hot path's licence to skip begin() and success()) holds while the
    breaker is closed and no failure came after the last success, and never otherwise."""
    breaker = CircuitBreaker(ov.Breaker(failures=2, cooldown=10.0))
    assert breaker.clean
    breaker.failure(0.0)
    assert not breaker.clean  # a success must still reset the count
    assert breaker.closed
    breaker.success()
    assert breaker.clean
    breaker.failure(1.0)
    breaker.failure(2.0)
    assert not breaker.clean
    assert not breaker.closed
    breaker.refresh(12.0)
    breaker.begin()
    assert not breaker.clean
    assert not breaker.available(12.0)
    breaker.success()
    assert breaker.clean
    assert breaker.closed
