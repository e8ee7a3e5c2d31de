"""Live progress: an instrumentation wrapper that reports each agent attempt.

The runtime opens ``Instrumentation.invoke`` around every attempt of every node (root,
supervisors and leaves), in the task doing the work. Wrapping the configured
instrumentation (telemetry, or the no-op) lets the daemon see attempts start and end
without a hook of its own in the core; spans are still opened by the wrapped one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol

from overstory.telemetry._hooks import AttributeValue, Instrumentation, SpanHook

if TYPE_CHECKING:
    from overstory.hierarchy._layer import Layer

__all__ = ["AttemptSink", "ProgressInstrumentation"]


class AttemptSink(Protocol):
    def attempt_started(
        self, *, token: object, goal_id: str, path: str, step: str | None, attempt: int
    ) -> None: ...

    def attempt_ended(
        self, *, token: object, goal_id: str, outcome: str, error: BaseException | None
    ) -> None: ...


class ProgressInstrumentation:
    """Delegates every hook to ``inner`` and reports attempts to ``sink``.

    ``outcome`` is ``"ok"``, ``"failed"`` (an ``Exception`` left the attempt) or
    ``"cancelled"`` (anything else: the goal was cancelled, a sibling failed, shutdown).
    """

    __slots__ = ("inner", "sink")

    def __init__(self, inner: Instrumentation, sink: AttemptSink) -> None:
        self.inner = inner
        self.sink = sink

    def goal(
        self, *, tree: str, goal_id: str, goal: str, layer: Layer
    ) -> AbstractContextManager[SpanHook]:
        return self.inner.goal(tree=tree, goal_id=goal_id, goal=goal, layer=layer)

    def plan(self, *, name: str, path: str, goal_id: str) -> AbstractContextManager[SpanHook]:
        return self.inner.plan(name=name, path=path, goal_id=goal_id)

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        self.inner.event(name, attributes)

    @contextmanager
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
    ) -> Iterator[SpanHook]:
        token = object()
        self.sink.attempt_started(
            token=token, goal_id=goal_id, path=path, step=step, attempt=attempt
        )
        outcome, error = "cancelled", None
        try:
            with self.inner.invoke(
                layer=layer,
                name=name,
                path=path,
                description=description,
                goal_id=goal_id,
                step=step,
                attempt=attempt,
                previous=previous,
                attributes=attributes,
            ) as span:
                yield span
            outcome = "ok"
        except Exception as exc:
            outcome, error = "failed", exc
            raise
        finally:
            self.sink.attempt_ended(token=token, goal_id=goal_id, outcome=outcome, error=error)
