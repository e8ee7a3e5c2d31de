"""The OpenTelemetry implementation of the runtime's instrumentation hooks.

Spans::

    invoke_workflow {tree}                 the goal; a new trace; in the root's layer
    └── invoke_agent {root}                the root supervisor (one attempt)
        ├── plan {root}                    a plan computed for the goal
        └── invoke_agent {team}            one attempt of a child, linked to the one before
            └── invoke_agent {leaf}
                └── execute_tool {tool}    ``ov.telemetry.tool()`` in user code

Each layer has its own ``TracerProvider`` whose resource says ``service.name =
{base}.{layer}`` and ``service.namespace = {base}``; all of them feed one span processor.
A span is made current (contextvars) exactly while its work runs, so spans started in
child tasks, in user code and in instrumented clients nest under it; the context also
carries the span's :class:`_Scope` (which services, which layer), which is how ``plan``,
``tool`` and user spans find their layer's provider.

A span ended by ``trio.Cancelled`` is not a failure: it gets ``overstory.cancelled=true``
and no ERROR status. Any other exception leaving a span is recorded on it (the runtime
has usually done so already; recording twice is avoided).

The metrics the spans feed are in :mod:`~overstory.telemetry._metrics`, the stack trace
format in :mod:`~overstory.telemetry._stacktrace`, and the global tracer provider that
routes user code's spans to these providers in :mod:`~overstory.telemetry._routing`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

import trio
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.metrics import Meter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    SpanLimits,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.trace import Link, Status, StatusCode

from overstory._errors import error_text
from overstory.hierarchy._layer import Layer
from overstory.telemetry._hooks import AttributeValue, SpanHook
from overstory.telemetry._metrics import CANCELLED, FAILED, GOAL_STATUS, SUCCEEDED, Metrics
from overstory.telemetry._stacktrace import stacktrace, type_name

__all__ = ["OtelInstrumentation", "current_scope"]

#: The instrumentation scope name of every overstory span.
SCOPE_NAME = "overstory"

_SCOPE_KEY = context_api.create_key("overstory.scope")
_GOAL_KEY = context_api.create_key("overstory.goal_id")
# The key the API stores the current span under, so that a span's context is built with
# one copy instead of one per value.
(_SPAN_KEY,) = trace_api.set_span_in_context(trace_api.INVALID_SPAN, context_api.Context())

# A goal's status only (never an attempt's outcome), so it stays with the spans.
_TIMED_OUT = "timed_out"


class _Scope:
    """One layer of one service base: the tracer overstory's spans in that layer use."""

    __slots__ = ("base", "instrumentation", "layer", "provider", "tracer")

    def __init__(
        self,
        instrumentation: OtelInstrumentation,
        base: str,
        layer: Layer,
        provider: TracerProvider,
    ) -> None:
        self.instrumentation = instrumentation
        self.base = base
        self.layer = layer
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE_NAME)


def current_scope(context: context_api.Context | None = None) -> _Scope | None:
    """The overstory scope of the current (or given) context: set inside every overstory
    span, ``None`` outside them."""
    scope = context_api.get_value(_SCOPE_KEY, context)
    return scope if isinstance(scope, _Scope) else None


def current_goal_id(context: context_api.Context | None = None) -> str | None:
    goal_id = context_api.get_value(_GOAL_KEY, context)
    return goal_id if isinstance(goal_id, str) else None


def _cancelled(error: BaseException) -> bool:
    """Whether ``error`` is cancellation: ``trio.Cancelled`` or a group of nothing else."""
    if isinstance(error, trio.Cancelled):
        return True
    if isinstance(error, BaseExceptionGroup):
        return all(_cancelled(e) for e in error.exceptions)
    return False


class _Span:
    """An open overstory span: the context manager the hooks return, and the SpanHook."""

    __slots__ = (
        "_attributes",
        "_failure",
        "_goal_id",
        "_kind",
        "_links",
        "_name",
        "_root",
        "_scope",
        "_start",
        "_status",
        "_token",
        "_tree",
        "span",
    )

    def __init__(
        self,
        scope: _Scope,
        name: str,
        attributes: dict[str, AttributeValue],
        *,
        kind: str,
        links: Sequence[Link] = (),
        root: bool = False,
        goal_id: str | None = None,
        tree: str = "",
    ) -> None:
        self._scope = scope
        self._name = name
        self._attributes = attributes
        self._kind = kind
        self._links = links
        self._root = root
        self._goal_id = goal_id
        self._tree = tree
        self._failure: BaseException | None = None
        self._status: str | None = None
        self.span: trace_api.Span = trace_api.INVALID_SPAN

    # -- SpanHook ------------------------------------------------------------------------

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        self.span.add_event(name, attributes)
        metrics = self._scope.instrumentation.metrics
        if metrics is not None:
            metrics.event(name, attributes)

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.span.set_attributes(attributes)
        status = attributes.get(GOAL_STATUS)
        if isinstance(status, str):
            self._status = status

    def record_failure(self, error: BaseException) -> None:
        if self._failure is error:
            return
        self._failure = error
        span = self.span
        error_type = type(error).__name__
        span.set_attribute("error.type", error_type)
        span.add_event(
            "exception",
            {
                "exception.type": type_name(error),
                "exception.message": error_text(error),
                "exception.stacktrace": stacktrace(error),
            },
        )
        span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error_text(error)}"))

    # -- context manager -----------------------------------------------------------------

    def __enter__(self) -> _Span:
        current = context_api.get_current()
        self._start = start = time.time_ns()
        span = self._scope.tracer.start_span(
            self._name,
            context_api.Context() if self._root else current,
            attributes=self._attributes,
            links=self._links,
            start_time=start,
            record_exception=False,
            set_status_on_exception=False,
        )
        self.span = span
        values = dict(current)
        values[_SPAN_KEY] = span
        values[_SCOPE_KEY] = self._scope
        if self._goal_id is not None:
            values[_GOAL_KEY] = self._goal_id
        self._token = context_api.attach(context_api.Context(values))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        context_api.detach(self._token)
        span = self.span
        outcome = SUCCEEDED
        if exc is not None:
            if _cancelled(exc):
                outcome = CANCELLED
            else:
                self.record_failure(exc)
        if self._failure is not None:
            outcome = FAILED
            # The error's traceback holds the frame that holds this span: dropped now,
            # so the two are freed at once instead of by a full collection.
            self._failure = None
        kind = self._kind
        if kind == "workflow":
            outcome = self._status or outcome
            if outcome == _TIMED_OUT:
                span.set_attribute("error.type", "timeout")
                span.set_status(Status(StatusCode.ERROR, "the goal timed out"))
        if outcome == CANCELLED:
            span.set_attribute("overstory.cancelled", True)
        end = time.time_ns()
        span.end(end)
        metrics = self._scope.instrumentation.metrics
        if metrics is not None:
            seconds = (end - self._start) / 1e9
            if kind == "agent":
                metrics.attempt(self._scope.layer, outcome, seconds)
            elif kind == "workflow":
                metrics.goal(self._tree, outcome, seconds)


class OtelInstrumentation:
    """Instrumentation that records overstory's work as OpenTelemetry spans and metrics.

    Made by :func:`overstory.telemetry.configure`; every span goes to ``processor``.
    ``base`` names the services (``None``: the name of the tree that runs the goal);
    ``per_layer=False`` puts every layer in the one service ``{base}``.
    """

    def __init__(
        self,
        processor: SpanProcessor,
        *,
        base: str | None = None,
        per_layer: bool = True,
        meter: Meter | None = None,
    ) -> None:
        self.processor = processor
        self.base = base
        self.per_layer = per_layer
        self.metrics = Metrics(meter) if meter is not None else None
        self._scopes: dict[str, dict[Layer, _Scope]] = {}
        self._limits = SpanLimits(
            max_events=None if os.environ.get("OTEL_SPAN_EVENT_COUNT_LIMIT") else 1024
        )

    # -- services --------------------------------------------------------------------------

    def scopes(self, tree: str) -> dict[Layer, _Scope]:
        """The per-layer scopes of the services a goal of ``tree`` reports to."""
        base = self.base or tree
        scopes = self._scopes.get(base)
        if scopes is None:
            scopes = self._scopes[base] = self._make_scopes(base)
        return scopes

    def _make_scopes(self, base: str) -> dict[Layer, _Scope]:
        if not self.per_layer:
            provider = self._provider({"service.name": base, "service.namespace": base})
            return {layer: _Scope(self, base, layer, provider) for layer in Layer}
        return {
            layer: _Scope(
                self,
                base,
                layer,
                self._provider(
                    {"service.name": f"{base}.{layer.value}", "service.namespace": base}
                ),
            )
            for layer in Layer
        }

    def _provider(self, attributes: Mapping[str, str]) -> TracerProvider:
        processors = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        processors.add_span_processor(self.processor)
        return TracerProvider(
            resource=Resource.create(dict(attributes)),
            active_span_processor=processors,
            shutdown_on_exit=False,
            span_limits=self._limits,
        )

    def providers(self) -> list[TracerProvider]:
        """Every tracer provider made so far (one per layer per service base)."""
        seen: dict[int, TracerProvider] = {}
        for scopes in self._scopes.values():
            for scope in scopes.values():
                seen.setdefault(id(scope.provider), scope.provider)
        return list(seen.values())

    def _scope(self, layer: Layer | None) -> _Scope:
        scope = current_scope()
        if scope is None or scope.instrumentation is not self:
            scope = self.scopes(self.base or "overstory")[layer or Layer.STRATEGIC]
        elif layer is not None and scope.layer is not layer:
            scope = self.scopes(scope.base)[layer]
        return scope

    # -- the hooks ---------------------------------------------------------------------

    def goal(self, *, tree: str, goal_id: str, goal: str, layer: Layer) -> _Span:
        # A new trace; the span that submitted the goal, if any, is linked.
        submitter = trace_api.get_current_span().get_span_context()
        links = [Link(submitter, {"overstory.link": "submitted_by"})] if submitter.is_valid else []
        return _Span(
            self.scopes(tree)[layer],
            f"invoke_workflow {tree}",
            {
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": tree,
                "gen_ai.conversation.id": goal_id,
                "overstory.layer": layer.value,
                "overstory.tree": tree,
                "overstory.goal": goal,
            },
            kind="workflow",
            links=links,
            root=True,
            goal_id=goal_id,
            tree=tree,
        )

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
    ) -> _Span:
        span_attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "gen_ai.agent.id": path,
            "gen_ai.conversation.id": goal_id,
            "overstory.layer": layer.value,
            "overstory.path": path,
            "overstory.attempt": attempt,
        }
        if description:
            span_attributes["gen_ai.agent.description"] = description
        if step is not None:
            span_attributes["overstory.step"] = step
        if attributes:
            span_attributes.update(attributes)
        links: Sequence[Link] = ()
        if isinstance(previous, _Span):
            links = [Link(previous.span.get_span_context(), {"overstory.link": "previous_attempt"})]
        return _Span(
            self._scope(layer), f"invoke_agent {name}", span_attributes, kind="agent", links=links
        )

    def plan(self, *, name: str, path: str, goal_id: str) -> _Span:
        scope = self._scope(None)
        return _Span(
            scope,
            f"plan {name}",
            {
                "gen_ai.operation.name": "plan",
                "gen_ai.agent.name": name,
                "gen_ai.agent.id": path,
                "gen_ai.conversation.id": goal_id,
                "overstory.layer": scope.layer.value,
                "overstory.path": path,
            },
            kind="plan",
        )

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        if self.metrics is not None:
            self.metrics.event(name, attributes)

    def tool(
        self,
        name: str,
        *,
        description: str = "",
        call_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> _Span:
        """An ``execute_tool {name}`` span in the current agent's layer."""
        scope = self._scope(None)
        span_attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
            "overstory.layer": scope.layer.value,
        }
        goal_id = current_goal_id()
        if goal_id is not None:
            span_attributes["gen_ai.conversation.id"] = goal_id
        if description:
            span_attributes["gen_ai.tool.description"] = description
        if call_id is not None:
            span_attributes["gen_ai.tool.call.id"] = call_id
        if attributes:
            span_attributes.update(attributes)
        return _Span(scope, f"execute_tool {name}", span_attributes, kind="tool")
