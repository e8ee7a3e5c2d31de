"""The instrumentation hooks the runtime calls; telemetry plugs a real implementation in.

The runtime opens a span context manager around every goal, every invocation of an
agent (one per attempt) and every planning call, and adds supervision events to the
span of the supervisor that decided them (an agent instance's restart: to the span of
the attempt that crashed it); the few events that happen outside every goal go to
:meth:`Instrumentation.event`. The context managers are entered in the task that does
the work, so a span is current exactly while its work runs and spans opened by user code
inside a leaf nest under the leaf's span.

:data:`NULL_INSTRUMENTATION` does nothing and costs one function call per hook; it is
what runs when telemetry is not configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from overstory.hierarchy._layer import Layer

__all__ = [
    "NULL_INSTRUMENTATION",
    "NULL_SPAN",
    "AttributeValue",
    "Instrumentation",
    "SpanHook",
    "current_instrumentation",
    "install_instrumentation",
]

AttributeValue = str | bool | int | float | Sequence[str]


class SpanHook(Protocol):
    """What the runtime does to an open span."""

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        """Add a point-in-time event (retry, reassign, escalate, ...)."""

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Add attributes known only once the work ran (the goal's status, the agent...)."""

    def record_failure(self, error: BaseException) -> None:
        """Mark the span failed by ``error`` (``error.type``, status ERROR, the exception)."""


class Instrumentation(Protocol):
    """Opens spans for goals, agent invocations and plans.

    Every method returns a context manager entered around the work; an exception
    leaving it has already been passed to ``record_failure`` by the runtime when it is
    a failure, while ``trio.Cancelled`` leaving it means the work was cancelled, which
    is not a failure.
    """

    def goal(
        self, *, tree: str, goal_id: str, goal: str, layer: Layer
    ) -> AbstractContextManager[SpanHook]:
        """The root span of a goal's trace (``invoke_workflow {tree}``); starts a new trace.

        ``layer`` is the root supervisor's layer: the workflow span is shown with it."""
        ...

    def invoke(
        self,
        *,
        layer: Layer,
        name: str,
        path: str,
        description: str,
        goal_id: str,
        step: str | None,
        attempt: int,
        previous: SpanHook | None,
        attributes: Mapping[str, AttributeValue],
    ) -> AbstractContextManager[SpanHook]:
        """One attempt of one agent (``invoke_agent {name}``); ``previous`` is the attempt
        before it on the same step, to link to."""
        ...

    def plan(self, *, name: str, path: str, goal_id: str) -> AbstractContextManager[SpanHook]:
        """A supervisor computing its plan for a goal (``plan {name}``)."""
        ...

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        """A supervision event that happened outside every goal (an agent instance failing
        to start in the background): there is no span to put it on."""


class _NullSpan:
    __slots__ = ()

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        pass

    def record_failure(self, error: BaseException) -> None:
        pass


NULL_SPAN: SpanHook = _NullSpan()
_NULL_CONTEXT: AbstractContextManager[SpanHook] = nullcontext(NULL_SPAN)


class _NullInstrumentation:
    __slots__ = ()

    def goal(
        self, *, tree: str, goal_id: str, goal: str, layer: Layer
    ) -> AbstractContextManager[SpanHook]:
        return _NULL_CONTEXT

    def invoke(
        self,
        *,
        layer: Layer,
        name: str,
        path: str,
        description: str,
        goal_id: str,
        step: str | None,
        attempt: int,
        previous: SpanHook | None,
        attributes: Mapping[str, AttributeValue],
    ) -> AbstractContextManager[SpanHook]:
        return _NULL_CONTEXT

    def plan(self, *, name: str, path: str, goal_id: str) -> AbstractContextManager[SpanHook]:
        return _NULL_CONTEXT

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        pass


NULL_INSTRUMENTATION: Instrumentation = _NullInstrumentation()


_installed: Instrumentation = NULL_INSTRUMENTATION


def install_instrumentation(instrumentation: Instrumentation | None) -> Instrumentation:
    """Make ``instrumentation`` the process default (``None``: back to no-op); return the old."""
    global _installed
    previous, _installed = _installed, instrumentation or NULL_INSTRUMENTATION
    return previous


def current_instrumentation() -> Instrumentation:
    """The instrumentation a tree uses when ``running()`` is given none."""
    return _installed
