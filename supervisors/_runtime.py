"""What every runtime node shares: the tree-wide runtime and one goal's running state."""

from __future__ import annotations

import linecache
import random
import sys
import traceback
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from types import CodeType
from typing import Any, Protocol

import attrs
import trio

from overstory._errors import error_text
from overstory.hierarchy._blueprint import NodeDef
from overstory.hierarchy._budget import Usage
from overstory.hierarchy._context import Context, Memory
from overstory.hierarchy._outcome import FailureRecord, StepRecord
from overstory.hierarchy._review import Reviewer
from overstory.hierarchy._task import Task
from overstory.supervisors._events import EventKind, EventSink, SupervisionEvent
from overstory.telemetry._hooks import NULL_INSTRUMENTATION, NULL_SPAN, Instrumentation, SpanHook

__all__ = [
    "CheckpointWriter",
    "GoalRun",
    "Node",
    "Runtime",
    "format_traceback",
    "key_scope",
    "within_key",
]

#: Called with (key, output) after a step completes, before its output is handed on.
CheckpointWriter = Callable[[str, Any], Awaitable[None]]

# The checkpoint key of the unit of work the current task runs inside, plus ">" ("" at
# the root). Trio copies context into the tasks a nested plan spawns, so every key a
# nested plan writes starts with the key of the step (or fan-out item) it works for.
_scope: ContextVar[str] = ContextVar("overstory_checkpoint_scope", default="")


def key_scope() -> str:
    """The prefix of every checkpoint and review key made in the current task."""
    return _scope.get()


class within_key:
    """Make work started inside the block prefix its keys with ``segment`` + ``">"``.

    A class rather than a generator context manager: it wraps every keyed attempt."""

    __slots__ = ("_segment", "_token")

    def __init__(self, segment: str) -> None:
        self._segment = segment

    def __enter__(self) -> None:
        self._token = _scope.set(f"{_scope.get()}{self._segment}>")

    def __exit__(self, *exc_info: object) -> None:
        _scope.reset(self._token)


def format_traceback(error: BaseException) -> str:
    """``traceback.format_exception(error)``, chained causes included, without the
    column carets of Python 3.11+: computing those (code positions, source segments)
    made recording one failure cost most of a millisecond. Exception groups keep the
    standard formatting."""
    return "".join(_format_chain(error, set()))


def _format_chain(error: BaseException, seen: set[int]) -> list[str]:
    if isinstance(error, BaseExceptionGroup):
        return traceback.format_exception(error)
    seen.add(id(error))
    lines: list[str] = []
    cause, context = error.__cause__, error.__context__
    if cause is not None and id(cause) not in seen:
        lines += _format_chain(cause, seen)
        lines.append(_CAUSE)
    elif context is not None and not error.__suppress_context__ and id(context) not in seen:
        lines += _format_chain(context, seen)
        lines.append(_CONTEXT)
    if error.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        stack = traceback.StackSummary.extract(
            traceback.walk_tb(error.__traceback__), lookup_lines=False
        )
        lines += stack.format()
    lines += traceback.format_exception_only(error)
    return lines


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"

# One link of a failure's chain as it stood when the failure was recorded. It holds
# neither the exception nor its frames (a crash loop's goal would keep every one alive,
# and every garbage collection would walk them): the exception's type and message; its
# stack (``None``: it had no traceback) as a key of code ids and instruction offsets,
# and the code objects, offsets and module globals themselves, flat; and the text that
# leads from it to the link recorded before it.
_Link = tuple[type[BaseException], tuple[int, ...] | None, tuple[Any, ...], str, str]
_TRACEBACK_HEADER = "Traceback (most recent call last):\n"


def _snapshot(error: BaseException, message: str) -> tuple[_Link, ...] | str:
    """What :func:`format_traceback` needs of ``error``, taken now and formatted later.

    A traceback only grows at its head as the exception propagates, so the frames walked
    now are exactly those format_traceback would walk now. Line numbers are looked up
    when formatting (``tb_lineno`` decodes the line table on every read). What the fast
    formatter does not reproduce (exception groups, notes, syntax errors, a ``str()``
    that raises, a module name that is not a string) is formatted at once instead.
    """
    links: list[_Link] = []
    seen: set[int] = set()
    current, lead, text = error, "", message
    while True:
        if not _plain(current):
            return format_traceback(error)
        seen.add(id(current))
        tb = current.__traceback__
        if tb is None:
            links.append((type(current), None, (), text, lead))
        else:
            key: list[int] = []
            walk: list[Any] = []
            while tb is not None:
                frame = tb.tb_frame
                code, offset = frame.f_code, tb.tb_lasti
                key += (id(code), offset)
                walk += (code, offset, frame.f_globals)
                tb = tb.tb_next
            links.append((type(current), tuple(key), tuple(walk), text, lead))
        # The same rule as _format_chain: a cause first, else an unsuppressed context.
        cause, context = current.__cause__, current.__context__
        if cause is not None and id(cause) not in seen:
            current, lead = cause, _CAUSE
        elif context is not None and not current.__suppress_context__ and id(context) not in seen:
            current, lead = context, _CONTEXT
        else:
            return tuple(links)
        try:
            text = str(current)
        except Exception:
            return format_traceback(error)


def _plain(error: BaseException) -> bool:
    return not (
        isinstance(error, (BaseExceptionGroup, SyntaxError))
        or getattr(error, "__notes__", None) is not None
        or not isinstance(type(error).__module__, str)
    )


def _render(links: tuple[_Link, ...], stacks: dict[tuple[int, ...], str]) -> str:
    """:func:`format_traceback`'s text for a snapshot. ``stacks`` remembers the formatted
    stack of each distinct walk while one read renders its records (the snapshots keep
    the code objects alive, so their ids are theirs), so that a failure that repeats
    formats its frames, and checks its source files, once per read."""
    parts: list[str] = []
    for kind, key, walk, message, lead in reversed(links):
        if key is not None:
            stack = stacks.get(key)
            if stack is None:
                stack = stacks[key] = _format_stack(walk)
            parts += (_TRACEBACK_HEADER, stack)
        name = kind.__qualname__
        if kind.__module__ not in ("__main__", "builtins"):
            name = f"{kind.__module__}.{name}"
        parts.append(f"{name}: {message}\n" if message else f"{name}\n")
        parts.append(lead)
    return "".join(parts)


def _format_stack(walk: tuple[Any, ...]) -> str:
    """``StackSummary.extract(walk_tb(tb), lookup_lines=False).format()`` for the frames
    of a snapshot: the same limit, line numbers, source caches and layout."""
    limit = getattr(sys, "tracebacklimit", None)
    count = len(walk) // 3
    if limit is not None:
        count = min(count, max(limit, 0))
    summaries: list[traceback.FrameSummary] = []
    files: set[str] = set()
    for index in range(0, 3 * count, 3):
        code, offset, scope = walk[index : index + 3]
        files.add(code.co_filename)
        linecache.lazycache(code.co_filename, scope)
        summaries.append(
            traceback.FrameSummary(
                code.co_filename, _line_at(code, offset), code.co_name, lookup_line=False
            )
        )
    for filename in files:
        linecache.checkcache(filename)
    return "".join(traceback.StackSummary.from_list(summaries).format())


def _line_at(code: CodeType, offset: int) -> int | None:
    """The line of the instruction at ``offset``, as ``tb_lineno`` computes it.

    Remembered per process: finding it walks the code's whole line table, which for a
    large function was most of the cost of rendering a failure. The memo holds each
    code object it names, so no id in it is ever reused; it is emptied when full."""
    key = (id(code), offset)
    known = _LINES.get(key)
    if known is not None:
        return known[1]
    line: int | None = None
    if offset < 0:
        line = code.co_firstlineno
    else:
        for start, end, at in code.co_lines():
            if start <= offset < end:
                line = at
                break
    if len(_LINES) >= _LINES_SIZE:
        _LINES.clear()
    _LINES[key] = (code, line)
    return line


_LINES: dict[tuple[int, int], tuple[CodeType, int | None]] = {}
_LINES_SIZE = 4096


# A failure record's fields, with its traceback still to format (a snapshot) or formatted.
_Unformatted = tuple[str, str, str | None, int, str, str, tuple[_Link, ...] | str, float]


@attrs.define(kw_only=True, eq=False)
class Runtime:
    """Tree-wide services for one ``Tree.running()``: randomness, telemetry, events."""

    tree: str
    instrumentation: Instrumentation
    reviewer: Reviewer | None
    on_event: EventSink | None
    rng: random.Random
    #: Whether spans are made at all: when not, the hot path skips building their attributes.
    traced: bool = attrs.field(init=False)
    #: Whether a supervision decision goes anywhere (``on_event`` or telemetry): a caller
    #: on a hot path checks it before even gathering what :meth:`report` would be given.
    listening: bool = attrs.field(init=False)
    #: Bumped whenever a circuit breaker or an intensity gate changes state: a supervisor
    #: remembers which children are available until it moves (see ``Node.steady``).
    health_changes: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.traced = self.instrumentation is not NULL_INSTRUMENTATION
        self.listening = self.traced or self.on_event is not None

    def report(self, span: SpanHook | None, kind: EventKind, path: str, **fields: Any) -> None:
        """Record a supervision decision on ``span`` (outside every goal: with the
        instrumentation) and pass it to ``on_event``.

        Builds nothing when nobody listens (no ``on_event``, no telemetry): a crash loop
        reports two decisions per restart.
        """
        if not self.listening:
            return
        event = SupervisionEvent(kind=kind, path=path, time=trio.current_time(), **fields)
        if span is not None and span is not NULL_SPAN:
            span.add_event(kind.value, event.attributes())
        else:
            self.instrumentation.event(kind.value, event.attributes())
        if self.on_event is not None:
            self.on_event(event)


@attrs.define(kw_only=True, eq=False)
class GoalRun:
    """One goal's state while it runs; dropped when the goal ends."""

    goal_id: str
    goal: str
    runtime: Runtime
    memory: Memory
    started: float
    checkpoints: Mapping[str, Any] = attrs.field(factory=dict)
    on_checkpoint: CheckpointWriter | None = None
    usage: Usage = attrs.field(factory=Usage)
    steps: list[StepRecord] = attrs.field(factory=list)
    # Recorded errors by id, each held by a weak reference where the type allows one,
    # else kept alive while the goal runs: either way no other object reusing the id
    # can look recorded.
    _recorded: dict[int, BaseException | weakref.ref[BaseException]] = attrs.field(
        factory=dict, alias="_recorded"
    )
    # The failure chain: records made, and failures recorded since ``failures`` was last
    # read, whose tracebacks are formatted when it is read (a crash loop's goal may
    # record thousands; formatting each at once was most of the cost of a failure).
    _failures: list[FailureRecord] = attrs.field(factory=list, alias="_failures")
    _unformatted: list[_Unformatted] = attrs.field(factory=list, alias="_unformatted")

    @property
    def failures(self) -> list[FailureRecord]:
        """The goal's failure chain, in order."""
        if self._unformatted:
            stacks: dict[tuple[int, ...], str] = {}
            self._failures += [
                FailureRecord(
                    path=path,
                    layer=layer,
                    step=step,
                    attempt=attempt,
                    error_type=error_type,
                    message=message,
                    traceback=tb if isinstance(tb, str) else _render(tb, stacks),
                    at=at,
                )
                for path, layer, step, attempt, error_type, message, tb, at in self._unformatted
            ]
            self._unformatted.clear()
        return self._failures

    def recorded(self, error: BaseException) -> bool:
        """Whether ``error`` (this very object) is already in the failure chain."""
        known = self._recorded.get(id(error))
        if isinstance(known, weakref.ref):
            return known() is error
        return known is error

    def close(self) -> None:
        """The goal has ended and its outcome is built: forget the recorded errors.

        An error of a built-in type is held strongly, and its traceback holds the frames
        that hold this run: a cycle that only a full collection would free, with the
        goal's whole state in it.
        """
        self._recorded.clear()

    def fail_once(
        self,
        *,
        path: str,
        layer: str,
        step: str | None,
        attempt: int,
        error: BaseException,
    ) -> None:
        """Append ``error`` to the failure chain unless this very object is in it already
        (an escalation or a budget stop passed up through several supervisors)."""
        if not self.recorded(error):
            self.fail(path=path, layer=layer, step=step, attempt=attempt, error=error)

    def elapsed(self) -> float:
        return trio.current_time() - self.started

    def fail(
        self,
        *,
        path: str,
        layer: str,
        step: str | None,
        attempt: int,
        error: BaseException,
        with_traceback: bool = True,
    ) -> None:
        """Append ``error`` to the goal's failure chain."""
        # Built-in exception types take no weak references (a zero weakref offset).
        self._recorded[id(error)] = weakref.ref(error) if type(error).__weakrefoffset__ else error
        message = error_text(error)
        self._unformatted.append(
            (
                path,
                layer,
                step,
                attempt,
                type(error).__name__,
                message,
                _snapshot(error, message) if with_traceback else "",
                self.elapsed(),
            )
        )


class Node(Protocol):
    """A runtime node: what a supervisor needs of each child."""

    definition: NodeDef

    def healthy(self, now: float) -> bool:
        """Whether routing may pick this node now (breakers are the parent's business)."""
        ...

    def steady(self) -> bool:
        """Whether :meth:`healthy` is true, and stays true whatever the time, until
        :attr:`Runtime.health_changes` moves."""
        ...

    async def execute(self, task: Task, ctx: Context, run: GoalRun, span: SpanHook) -> Any:
        """Do ``task`` once. Raises the failure; ``trio.Cancelled`` is never converted."""
        ...
