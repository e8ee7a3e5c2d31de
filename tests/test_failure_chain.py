"""The failure chain formats tracebacks when it is read: the text is what
``format_traceback`` gave when the failure was recorded, whatever happened since."""

from __future__ import annotations

import gc
import random
import sys
import weakref
from collections.abc import Callable

import pytest

from overstory.hierarchy._context import Memory
from overstory.supervisors._runtime import GoalRun, Runtime, format_traceback
from overstory.telemetry import NULL_INSTRUMENTATION


def _run() -> GoalRun:
    runtime = Runtime(
        tree="t",
        instrumentation=NULL_INSTRUMENTATION,
        reviewer=None,
        on_event=None,
        rng=random.Random(0),
    )
    return GoalRun(goal_id="g", goal="go", runtime=runtime, memory=Memory(), started=0.0)


def _caught(raiser: Callable[[], None]) -> BaseException:
    try:
        raiser()
    except BaseException as exc:  # the cases raise groups too
        return exc
    raise AssertionError("did not raise")


def _plain() -> None:
    raise RuntimeError("boom")


def _empty_message() -> None:
    raise RuntimeError


def _key_error() -> None:
    {}["missing"]  # a KeyError whose message is quoted


def _caused() -> None:
    try:
        _plain()
    except RuntimeError as exc:
        raise ValueError("outer") from exc


def _context() -> None:
    try:
        _plain()
    except RuntimeError:
        raise LookupError("while handling")  # noqa: B904 - the implicit context is the case


def _suppressed() -> None:
    try:
        _plain()
    except RuntimeError:
        raise ValueError("no context") from None


def _cycle() -> None:
    first, second = ValueError("first"), ValueError("second")
    first.__cause__, second.__cause__ = second, first
    raise first


def _recursive(depth: int = 30) -> None:
    if depth:
        _recursive(depth - 1)
    raise RecursionError("deep")


def _group() -> None:
    raise ExceptionGroup("several", [ValueError("a"), KeyError("b")])


def _noted() -> None:
    error = ValueError("with a note")
    error.add_note("a note")
    raise error


def _syntax() -> None:
    compile("def (", "<case>", "exec")


def _caused_by_a_group() -> None:
    try:
        _group()
    except ExceptionGroup as exc:
        raise RuntimeError("after the group") from exc


class _BadStr(Exception):
    def __str__(self) -> str:
        raise TypeError("no str")


def _bad_str_cause() -> None:
    try:
        raise _BadStr
    except _BadStr as exc:
        raise RuntimeError("outer") from exc


CASES = [
    _plain,
    _empty_message,
    _key_error,
    _caused,
    _context,
    _suppressed,
    _cycle,
    _recursive,
    _group,
    _noted,
    _syntax,
    _caused_by_a_group,
    _bad_str_cause,
]


@pytest.mark.parametrize("raiser", CASES, ids=[c.__name__.strip("_") for c in CASES])
async def test_read_traceback_is_format_traceback(raiser: Callable[[], None]) -> None:
    """Each kind of chain reads back exactly as format_traceback formats it."""
    error = _caught(raiser)
    expected = format_traceback(error)
    run = _run()
    run.fail(path="p", layer="leaf", step="s", attempt=1, error=error)
    [record] = run.failures
    assert record.traceback == expected
    assert (record.error_type, record.message) == (type(error).__name__, str(error))


async def test_the_traceback_is_the_one_at_recording_time() -> None:
    """An error raised further after it was recorded keeps the frames it had then."""
    error = _caught(_caused)
    expected = format_traceback(error)
    run = _run()
    run.fail(path="p", layer="leaf", step="s", attempt=1, error=error)

    def again() -> None:
        raise error

    assert _caught(again) is error
    assert format_traceback(error) != expected  # it grew a frame
    assert run.failures[0].traceback == expected


async def test_reads_keep_order_and_records_added_between_reads() -> None:
    """Records come back in order, across reads, with and without tracebacks."""
    run = _run()
    errors = [_caught(_plain), _caught(_caused), _caught(_plain)]
    run.fail(path="a", layer="leaf", step="s", attempt=1, error=errors[0])
    first = run.failures
    assert [r.path for r in first] == ["a"]
    run.fail(path="b", layer="leaf", step="s", attempt=2, error=errors[1])
    run.fail(path="c", layer="tactical", step="s", attempt=3, error=errors[2], with_traceback=False)
    assert [(r.path, r.attempt) for r in run.failures] == [("a", 1), ("b", 2), ("c", 3)]
    assert [r.traceback for r in run.failures] == [
        format_traceback(errors[0]),
        format_traceback(errors[1]),
        "",
    ]
    assert run.failures is run.failures


class _Crash(Exception):
    """A user-defined failure: its type takes weak references."""


async def test_the_chain_does_not_keep_a_recorded_error_alive() -> None:
    """A recorded failure (and so its frames) is freed once nothing else holds it; its
    record still reads back in full."""
    run = _run()
    error = _caught(_raise_crash)
    expected = format_traceback(error)
    run.fail(path="p", layer="leaf", step="s", attempt=1, error=error)
    assert run.recorded(error)
    alive = weakref.ref(error)
    del error
    assert alive() is None
    [record] = run.failures
    assert record.traceback == expected
    assert (record.error_type, record.message) == ("_Crash", "crashed")


async def test_recorded_knows_a_user_error_by_identity_while_it_lives() -> None:
    """An error of a user-defined type recorded and dropped cannot make a new error at
    its address look recorded; one still alive is known."""
    run = _run()
    kept = _Crash("kept")
    run.fail(path="p", layer="leaf", step="s", attempt=1, error=kept)
    fresh: list[_Crash] = []
    for _ in range(50):
        run.fail(path="p", layer="leaf", step="s", attempt=1, error=_Crash("x"))
        gc.collect()
        fresh.append(_Crash("new"))
    assert not any(run.recorded(error) for error in fresh)
    assert run.recorded(kept)
    assert len(run.failures) == 51


def _raise_crash() -> None:
    raise _Crash("crashed")


@pytest.mark.parametrize("limit", [0, 2, -1])
async def test_a_traceback_limit_applies_as_in_format_traceback(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sys.tracebacklimit`` cuts the read-back stack exactly as format_traceback cuts it."""
    error = _caught(_recursive)
    monkeypatch.setattr(sys, "tracebacklimit", limit, raising=False)
    expected = format_traceback(error)
    run = _run()
    run.fail(path="p", layer="leaf", step="s", attempt=1, error=error)
    assert run.failures[0].traceback == expected


def _two_lines(first: bool) -> None:
    if first:
        raise ValueError("from the first raise")
    raise ValueError("from the second raise")


async def test_lines_stay_right_when_one_function_fails_at_two_places_in_many_goals() -> None:
    """Line numbers, remembered per code object and offset across goals, still match
    format_traceback for two raises in one function, read in alternating goals."""
    for first in (True, False, True, False):
        error = _caught(lambda first=first: _two_lines(first))  # type: ignore[misc]
        expected = format_traceback(error)
        run = _run()
        run.fail(path="p", layer="leaf", step="s", attempt=1, error=error)
        assert run.failures[0].traceback == expected
