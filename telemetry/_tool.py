"""``tool()``: an ``execute_tool {name}`` span around a tool call in agent code."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from overstory.telemetry._hooks import NULL_SPAN, AttributeValue, SpanHook
from overstory.telemetry._otel import _Span, current_scope

__all__ = ["tool"]

P = ParamSpec("P")
R = TypeVar("R")


class tool:
    """Record a tool call as an ``execute_tool {name}`` span under the current agent.

    Use it around the call, or as a decorator (sync or async functions; each call is
    one span)::

        with ov.telemetry.tool("crm.lookup", description="Find a lead") as span:
            row = await crm.get(lead)
            span.set_attributes({"crm.rows": 1})

        @ov.telemetry.tool("search")
        async def search(query: str) -> list[str]: ...

    The span has ``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name``,
    ``gen_ai.tool.type=function``, the goal's ``gen_ai.conversation.id`` and the
    agent's ``overstory.layer``; an exception leaving it marks it ERROR with
    ``error.type``, while ``trio.Cancelled`` marks it ``overstory.cancelled``. Outside
    every overstory span (no goal running, or telemetry not configured) it does nothing.
    A ``tool`` object is one span: enter it once.
    """

    __slots__ = ("_attributes", "_call_id", "_description", "_name", "_span")

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        call_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a tool needs a non-empty name, got {name!r}")
        self._name = name
        self._description = description
        self._call_id = call_id
        self._attributes = attributes
        self._span: _Span | None = None

    def __enter__(self) -> SpanHook:
        if self._span is not None:
            raise RuntimeError(f"tool({self._name!r}) was already entered; make one per call")
        scope = current_scope()
        if scope is None:
            return NULL_SPAN
        span = scope.instrumentation.tool(
            self._name,
            description=self._description,
            call_id=self._call_id,
            attributes=self._attributes,
        )
        self._span = span
        return span.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._span is not None:
            self._span.__exit__(exc_type, exc, traceback)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        name, description = self._name, self._description
        attributes = self._attributes

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def traced_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with tool(name, description=description, attributes=attributes):
                    return await fn(*args, **kwargs)

            return traced_async

        @functools.wraps(fn)
        def traced(*args: P.args, **kwargs: P.kwargs) -> Any:
            with tool(name, description=description, attributes=attributes):
                return fn(*args, **kwargs)

        return traced
