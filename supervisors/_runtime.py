"""What every runtime node shares: the tree-wide runtime and one goal's running state."""

from __future__ import annotations

import random
import traceback
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

import attrs
import trio

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
    """Make work started inside the block prefix its keys with ``segment`` + ``">"``."""

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

    def __attrs_post_init__(self) -> None:
        self.traced = self.instrumentation is not NULL_INSTRUMENTATION

    def emit(self, span: SpanHook | None, event: SupervisionEvent) -> None:
        """Record a supervision decision on ``span`` and pass it to ``on_event``."""
        if span is not None and span is not NULL_SPAN:
            span.add_event(event.kind.value, event.attributes())
        else:
            self.instrumentation.event(event.kind.value, event.attributes())
        if self.on_event is not None:
            self.on_event(event)

    def event(self, kind: EventKind, path: str, **fields: Any) -> SupervisionEvent:
        return SupervisionEvent(kind=kind, path=path, time=trio.current_time(), **fields)


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
    failures: list[FailureRecord] = attrs.field(factory=list)
    steps: list[StepRecord] = attrs.field(factory=list)
    # Recorded errors by id, kept alive while the goal runs so that no id is reused.
    _recorded: dict[int, BaseException] = attrs.field(factory=dict, alias="_recorded")

    def recorded(self, error: BaseException) -> bool:
        """Whether ``error`` (this very object) is already in the failure chain."""
        return self._recorded.get(id(error)) is error

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
        self._recorded[id(error)] = error
        self.failures.append(
            FailureRecord(
                path=path,
                layer=layer,
                step=step,
                attempt=attempt,
                error_type=type(error).__name__,
                message=str(error),
                traceback=format_traceback(error) if with_traceback else "",
                at=self.elapsed(),
            )
        )


class Node(Protocol):
    """A runtime node: what a supervisor needs of each child."""

    definition: NodeDef

    def healthy(self, now: float) -> bool:
        """Whether routing may pick this node now (breakers are the parent's business)."""
        ...

    async def execute(self, task: Task, ctx: Context, run: GoalRun, span: SpanHook) -> Any:
        """Do ``task`` once. Raises the failure; ``trio.Cancelled`` is never converted."""
        ...
