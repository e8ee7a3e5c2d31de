"""The HTTP API: a Starlette app built from one table of endpoints.

The table (:data:`ENDPOINTS`) gives each endpoint its method, path, role, request body,
query parameters and responses; the Starlette routes and the OpenAPI document are both
made from it. Every answer other than a 2xx is an :class:`ErrorBody`. Bad input of any
kind gets a 4xx naming the field; an unexpected exception is logged and answered 500
(none is expected: the fuzz tests hold the API to that).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from overstory.daemon import _store as store
from overstory.daemon._auth import Identity, Role, Tokens
from overstory.daemon._journal import JournalError
from overstory.daemon._metrics import CONTENT_TYPE, render
from overstory.daemon._models import (
    EditReview,
    ErrorBody,
    EventPage,
    EventView,
    GoalDetail,
    GoalPage,
    GoalStatus,
    GoalSummary,
    HealthView,
    InvalidBody,
    Problem,
    RejectReview,
    ReviewList,
    ReviewStatus,
    ReviewView,
    SubmitGoal,
    TraceView,
    TreeView,
    json_schema,
    structure,
    unstructure,
)
from overstory.daemon._service import Busy, Daemon, Draining, Mismatch
from overstory.hierarchy._review import Approve, Edit, Reject

__all__ = ["ENDPOINTS", "HttpError", "create_app", "openapi"]

logger = logging.getLogger("overstory.daemon")

MAX_DEPTH = 64
MAX_ID = 2**63 - 1
HEARTBEAT = 15.0

Handler = Callable[["Call"], Awaitable[Response]]


class HttpError(Exception):
    """Answer ``status`` with an :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        problems: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(error=error, message=message, problems=problems or [])
        self.headers = headers or {}


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _ENCODER.encode(unstructure(value)),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _error(exc: HttpError) -> Response:
    return _json(exc.body, exc.status, exc.headers)


# -- query parameters -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Param:
    """A query parameter: parsed, bounded, and documented from one definition."""

    name: str
    kind: str  # "int", "str", "bool", or "enum"
    description: str
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()

    def parse(self, request: Request) -> Any:
        raw = request.query_params.get(self.name)
        if raw is None or raw == "":
            return self.default
        if self.kind == "str":
            if len(raw) > 200:
                raise self._bad("must be at most 200 characters")
            return raw
        if self.kind == "bool":
            if raw not in ("true", "false"):
                raise self._bad(f"must be true or false, got {raw!r}")
            return raw == "true"
        if self.kind == "enum":
            if raw not in self.choices:
                raise self._bad(f"must be one of {', '.join(self.choices)}; got {raw!r}")
            return raw
        try:
            value = int(raw)
        except ValueError:
            raise self._bad(f"must be an integer, got {raw[:40]!r}") from None
        low = self.minimum if self.minimum is not None else -math.inf
        high = self.maximum if self.maximum is not None else math.inf
        if not low <= value <= high:
            raise self._bad(f"must be from {self.minimum} to {self.maximum}, got {value}")
        return value

    def _bad(self, problem: str) -> HttpError:
        return HttpError(
            422,
            "invalid_query",
            f"query parameter {self.name} {problem}",
            [Problem(field=self.name, problem=problem)],
        )

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any]
        if self.kind == "int":
            schema = {"type": "integer"}
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        elif self.kind == "bool":
            schema = {"type": "boolean"}
        elif self.kind == "enum":
            schema = {"type": "string", "enum": list(self.choices)}
        else:
            schema = {"type": "string", "maxLength": 200}
        if self.default is not None:
            schema["default"] = self.default
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": schema,
        }


LIMIT = Param(
    name="limit", kind="int", default=50, minimum=1, maximum=500, description="Page size."
)


# -- the endpoint table -----------------------------------------------------------------

PUBLIC = "public"


@attrs.frozen(kw_only=True)
class Endpoint:
    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    role: Role | str | None = None  # None: any valid token; PUBLIC: no token
    body: type | None = None
    params: tuple[Param, ...] = ()
    ok: int = 200
    answer: Any = None  # a response class, or a (media type, description) pair
    errors: tuple[int, ...] = ()


@attrs.define
class Call:
    """One request as an endpoint handler sees it."""

    request: Request
    endpoint: Endpoint
    who: Identity | None
    daemon: Daemon
    tokens: Tokens
    streams: set[trio.CancelScope]
    max_body: int

    def param(self, name: str) -> Any:
        for param in self.endpoint.params:
            if param.name == name:
                return param.parse(self.request)
        raise KeyError(name)

    async def body(self) -> Any:
        """The request body parsed and structured as the endpoint's body class."""
        kind = self.endpoint.body
        assert kind is not None
        data = await self.json()
        try:
            return structure(data, kind)
        except InvalidBody as exc:
            raise HttpError(422, "invalid_body", str(exc), exc.problems) from None

    async def json(self) -> Any:
        declared = self.request.headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                raise HttpError(400, "bad_request", "Content-Length is not a number") from None
            if too_big:
                raise self._too_big()
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise self._too_big()
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            raise HttpError(
                422,
                "invalid_body",
                "the request needs a JSON object as its body",
                [Problem(field="", problem="a JSON object is required")],
            )
        try:
            data = json.loads(raw, parse_constant=_no_constants, parse_float=_finite)
        except (ValueError, RecursionError) as exc:
            message = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
            raise HttpError(400, "invalid_json", f"the body is not valid JSON: {message}") from None
        if _depth(data) > MAX_DEPTH:
            raise HttpError(
                422,
                "invalid_body",
                f"the body is nested more than {MAX_DEPTH} levels deep",
                [Problem(field="", problem=f"nested more than {MAX_DEPTH} levels deep")],
            )
        return data

    def _too_big(self) -> HttpError:
        return HttpError(
            413, "too_large", f"the body is larger than the limit of {self.max_body} bytes"
        )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)
    return deepest


def _goal_id(call: Call) -> str:
    goal_id: str = call.request.path_params["goal_id"]
    return goal_id


def _review_id(call: Call) -> int:
    raw: str = call.request.path_params["review_id"]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise HttpError(404, "not_found", f"no review {raw[:40]!r}")
    return int(raw)


# -- handlers ---------------------------------------------------------------------------


async def healthz(call: Call) -> Response:
    return _json(HealthView(status="ok"))


async def readyz(call: Call) -> Response:
    daemon = call.daemon
    if daemon.accepting:
        return _json(HealthView(status="ready"))
    return _json(HealthView(status="draining" if daemon.draining else "starting"), 503)


async def openapi_json(call: Call) -> Response:
    return _json(openapi())


async def metrics(call: Call) -> Response:
    daemon = call.daemon
    nodes = daemon.runner.health() if daemon.runner is not None else ()
    text = render(
        daemon.metrics,
        gauges=daemon.gauges(),
        nodes=((n.path, n.in_flight, n.succeeded, n.failed, n.restarts) for n in nodes),
        journal=(daemon.journal.commits, daemon.journal.operations),
    )
    return Response(text, media_type=CONTENT_TYPE)


async def submit_goal(call: Call) -> Response:
    request: SubmitGoal = await call.body()
    assert call.who is not None
    try:
        created, goal = await call.daemon.submit(request, call.who)
    except Draining as exc:
        raise HttpError(503, "draining", str(exc)) from None
    except Busy as exc:
        raise HttpError(
            429, "busy", str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from None
    except Mismatch as exc:
        raise HttpError(
            409,
            "idempotency_mismatch",
            str(exc),
            [Problem(field="idempotency_key", problem="already used for a different goal")],
        ) from None
    except JournalError as exc:
        raise HttpError(503, "journal_unavailable", str(exc)) from None
    headers = {"Location": f"/v1/goals/{goal.id}"}
    return _json(goal, 202 if created else 200, headers)


async def list_goals(call: Call) -> Response:
    status = call.param("status")
    cursor = call.param("cursor")
    goals, last = await call.daemon.goals(
        status=GoalStatus(status) if status else None,
        before=cursor,
        limit=call.param("limit"),
    )
    return _json(GoalPage(goals=goals, next_cursor=str(last) if last is not None else None))


async def get_goal(call: Call) -> Response:
    goal = await call.daemon.goal(_goal_id(call))
    if goal is None:
        raise HttpError(404, "not_found", f"no goal {_goal_id(call)[:80]!r}")
    return _json(goal)


async def cancel_goal(call: Call) -> Response:
    assert call.who is not None
    goal_id = _goal_id(call)
    try:
        goal = await call.daemon.cancel(goal_id, call.who)
    except store.NotFound:
        raise HttpError(404, "not_found", f"no goal {goal_id[:80]!r}") from None
    except store.Conflict as exc:
        raise HttpError(409, "already_ended", str(exc)) from None
    except JournalError as exc:
        raise HttpError(503, "journal_unavailable", str(exc)) from None
    return _json(goal, 202 if not goal.status.final else 200)


async def goal_events(call: Call) -> Response:
    goal_id = _goal_id(call)
    after = call.param("after")
    follow = call.param("follow")
    last_id = call.request.headers.get("last-event-id", "")
    if last_id.isdigit() and int(last_id) <= MAX_ID:
        after = max(after, int(last_id))
    if await call.daemon.journal.read(lambda c: store.get_goal(c, goal_id)) is None:
        raise HttpError(404, "not_found", f"no goal {goal_id[:80]!r}")
    return EventStream(call.daemon, goal_id, after, follow, call.streams)  # type: ignore[return-value]


async def goal_trace(call: Call) -> Response:
    goal_id = _goal_id(call)
    if await call.daemon.journal.read(lambda c: store.get_goal(c, goal_id)) is None:
        raise HttpError(404, "not_found", f"no goal {goal_id[:80]!r}")
    spans = await call.daemon.trace(goal_id)
    if spans is None:
        raise HttpError(
            409,
            "tracing_off",
            "this daemon records no spans: start it with `overstory serve --trace` (or read "
            "its traces where OTEL_EXPORTER_OTLP_ENDPOINT sends them)",
        )
    return _json(TraceView(goal_id=goal_id, spans=spans))


async def list_reviews(call: Call) -> Response:
    status = call.param("status")
    reviews = await call.daemon.reviews(
        status=ReviewStatus(status) if status != "all" else None,
        goal_id=call.param("goal_id"),
        limit=call.param("limit"),
    )
    return _json(ReviewList(reviews=reviews))


async def get_review(call: Call) -> Response:
    review = await call.daemon.get_review(_review_id(call))
    if review is None:
        raise HttpError(404, "not_found", f"no review {_review_id(call)}")
    return _json(review)


async def _decide(call: Call, decision: Approve | Reject | Edit) -> Response:
    assert call.who is not None
    review_id = _review_id(call)
    try:
        review = await call.daemon.decide(review_id, decision, call.who)
    except store.NotFound:
        raise HttpError(404, "not_found", f"no review {review_id}") from None
    except store.Conflict as exc:
        raise HttpError(409, "already_decided", str(exc)) from None
    except JournalError as exc:
        raise HttpError(503, "journal_unavailable", str(exc)) from None
    return _json(review)


async def approve_review(call: Call) -> Response:
    _review_id(call)
    return await _decide(call, Approve())


async def reject_review(call: Call) -> Response:
    _review_id(call)
    body: RejectReview = await call.body()
    return await _decide(call, Reject(feedback=body.reason))


async def edit_review(call: Call) -> Response:
    _review_id(call)
    body: EditReview = await call.body()
    return await _decide(call, Edit(output=body.output))


async def tree(call: Call) -> Response:
    return _json(await call.daemon.tree_view())


async def audit(call: Call) -> Response:
    limit = call.param("limit")
    events = await call.daemon.events(
        goal_id=call.param("goal_id"),
        kind=call.param("kind"),
        after=call.param("after"),
        limit=limit + 1,
    )
    more = len(events) > limit
    events = events[:limit]
    return _json(EventPage(events=events, next_after=events[-1].seq if more else None))


# -- server-sent events -----------------------------------------------------------------


class EventStream:
    """An ASGI response streaming a goal's events as server-sent events.

    Stored events after ``after`` come first, then live ones as they commit, until the
    goal ends (or at once, with ``follow=false``). A comment line every 15 s keeps
    proxies from closing an idle stream. The stream's cancel scope is in ``streams``,
    so shutdown can end it instead of waiting for the client.
    """

    status_code = 200

    def __init__(
        self,
        daemon: Daemon,
        goal_id: str,
        after: int,
        follow: bool,
        streams: set[trio.CancelScope],
    ) -> None:
        self.daemon = daemon
        self.goal_id = goal_id
        self.after = after
        self.follow = follow
        self.streams = streams
        self._disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ],
        }
        started = gone = False
        with trio.CancelScope() as cancel_scope:  # shutdown cancels it: see ``streams``
            self.streams.add(cancel_scope)
            try:
                await send(start)
                started = True
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_disconnect, receive, nursery.cancel_scope)
                    await self._produce(send)
                    nursery.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                gone = True  # the client left
            finally:
                self.streams.discard(cancel_scope)
        if gone or self._disconnected:
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            if not started:
                await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch_disconnect(self, receive: Receive, scope: trio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._disconnected = True
                scope.cancel()
                return

    async def _produce(self, send: Send) -> None:
        last = self.after
        while True:
            with self.daemon.follow(self.goal_id) as live:
                while True:  # stored events first, a page at a time
                    stored = await self.daemon.events(
                        goal_id=self.goal_id, kind=None, after=last, limit=500
                    )
                    for event in stored:
                        await self._send(send, event)
                        last = event.seq
                    if len(stored) < 500:
                        break
                if not self.follow or not self.daemon.is_live(self.goal_id):
                    while True:
                        try:
                            pending = live.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            return
                        if pending is not None and pending.seq > last:
                            await self._send(send, pending)
                            last = pending.seq
                while True:
                    arrived: EventView | None = None
                    with trio.move_on_after(HEARTBEAT) as idle:
                        try:
                            arrived = await live.receive()
                        except trio.EndOfChannel:
                            break
                    if idle.cancelled_caught:
                        await send(
                            {"type": "http.response.body", "body": b": ping\n\n", "more_body": True}
                        )
                        continue
                    if arrived is not None and arrived.seq > last:
                        await self._send(send, arrived)
                        last = arrived.seq
            if not self.daemon.is_live(self.goal_id):
                # ended: whatever committed after the channel closed is in the journal
                for event in await self.daemon.events(
                    goal_id=self.goal_id, kind=None, after=last, limit=500
                ):
                    await self._send(send, event)
                return
            # fell behind: the channel was closed; re-read from the journal and go on

    async def _send(self, send: Send, event: EventView) -> None:
        data = json.dumps(unstructure(event), ensure_ascii=False)
        body = f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n".encode()
        await send({"type": "http.response.body", "body": body, "more_body": True})


# -- the table --------------------------------------------------------------------------

GOAL_ID = {"name": "goal_id", "in": "path", "required": True, "schema": {"type": "string"}}
REVIEW_ID = {
    "name": "review_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET",
        path="/healthz",
        name="healthz",
        summary="Liveness: the process serves HTTP.",
        handler=healthz,
        role=PUBLIC,
        answer=HealthView,
    ),
    Endpoint(
        method="GET",
        path="/readyz",
        name="readyz",
        summary="Readiness: 200 while goals are accepted, 503 while starting or draining.",
        handler=readyz,
        role=PUBLIC,
        answer=HealthView,
        errors=(503,),
    ),
    Endpoint(
        method="GET",
        path="/openapi.json",
        name="openapi",
        summary="This document.",
        handler=openapi_json,
        answer=("application/json", "An OpenAPI 3.1 document."),
    ),
    Endpoint(
        method="GET",
        path="/metrics",
        name="metrics",
        summary="Metrics in the Prometheus text format.",
        handler=metrics,
        answer=("text/plain", "Prometheus text exposition format 0.0.4."),
    ),
    Endpoint(
        method="POST",
        path="/v1/goals",
        name="submit_goal",
        summary="Submit a goal: 202 once it is committed (200: an earlier goal, same key).",
        handler=submit_goal,
        role=Role.SUBMIT,
        body=SubmitGoal,
        ok=202,
        answer=GoalSummary,
        errors=(400, 409, 413, 422, 429, 503),
    ),
    Endpoint(
        method="GET",
        path="/v1/goals",
        name="list_goals",
        summary="Goals, newest first.",
        handler=list_goals,
        params=(
            Param(
                name="status",
                kind="enum",
                choices=tuple(s.value for s in GoalStatus),
                description="Only goals in this status.",
            ),
            LIMIT,
            Param(
                name="cursor",
                kind="int",
                minimum=1,
                maximum=MAX_ID,
                description="next_cursor from the previous page.",
            ),
        ),
        answer=GoalPage,
        errors=(422,),
    ),
    Endpoint(
        method="GET",
        path="/v1/goals/{goal_id}",
        name="get_goal",
        summary="One goal: status, steps done so far, attempts running, outcome.",
        handler=get_goal,
        answer=GoalDetail,
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/goals/{goal_id}/cancel",
        name="cancel_goal",
        summary="Cancel a goal (202 while its work stops; 200 if it ended at once).",
        handler=cancel_goal,
        role=Role.SUBMIT,
        ok=202,
        answer=GoalSummary,
        errors=(404, 409, 503),
    ),
    Endpoint(
        method="GET",
        path="/v1/goals/{goal_id}/events",
        name="goal_events",
        summary="The goal's events as server-sent events, live until it ends.",
        handler=goal_events,
        params=(
            Param(
                name="after",
                kind="int",
                default=0,
                minimum=0,
                maximum=MAX_ID,
                description="Only events with a larger seq (also: the Last-Event-ID header).",
            ),
            Param(
                name="follow",
                kind="bool",
                default=True,
                description="Keep streaming until the goal ends (false: stored events only).",
            ),
        ),
        answer=("text/event-stream", "id: seq, event: kind, data: an EventView."),
        errors=(404, 422),
    ),
    Endpoint(
        method="GET",
        path="/v1/goals/{goal_id}/trace",
        name="goal_trace",
        summary="The goal's recorded spans, for a waterfall (needs serve --trace).",
        handler=goal_trace,
        answer=TraceView,
        errors=(404, 409),
    ),
    Endpoint(
        method="GET",
        path="/v1/reviews",
        name="list_reviews",
        summary="Reviews, oldest first (pending ones by default).",
        handler=list_reviews,
        params=(
            Param(
                name="status",
                kind="enum",
                default="pending",
                choices=(*(s.value for s in ReviewStatus), "all"),
                description="Only reviews in this status.",
            ),
            Param(name="goal_id", kind="str", description="Only reviews of this goal."),
            LIMIT,
        ),
        answer=ReviewList,
        errors=(422,),
    ),
    Endpoint(
        method="GET",
        path="/v1/reviews/{review_id}",
        name="get_review",
        summary="One review.",
        handler=get_review,
        answer=ReviewView,
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/reviews/{review_id}/approve",
        name="approve_review",
        summary="Approve: the output is handed on as it is.",
        handler=approve_review,
        role=Role.REVIEW,
        answer=ReviewView,
        errors=(404, 409, 503),
    ),
    Endpoint(
        method="POST",
        path="/v1/reviews/{review_id}/reject",
        name="reject_review",
        summary="Reject: the step runs again with the reason as feedback.",
        handler=reject_review,
        role=Role.REVIEW,
        body=RejectReview,
        answer=ReviewView,
        errors=(400, 404, 409, 413, 422, 503),
    ),
    Endpoint(
        method="POST",
        path="/v1/reviews/{review_id}/edit",
        name="edit_review",
        summary="Edit: hand on the given output instead.",
        handler=edit_review,
        role=Role.REVIEW,
        body=EditReview,
        answer=ReviewView,
        errors=(400, 404, 409, 413, 422, 503),
    ),
    Endpoint(
        method="GET",
        path="/v1/tree",
        name="tree",
        summary="The live tree: every node's load, failures, restarts, breaker and trip.",
        handler=tree,
        answer=TreeView,
    ),
    Endpoint(
        method="GET",
        path="/v1/audit",
        name="audit",
        summary="The audit log: every state change, who asked for it, in order.",
        handler=audit,
        role=Role.ADMIN,
        params=(
            Param(name="goal_id", kind="str", description="Only this goal's events."),
            Param(
                name="kind",
                kind="str",
                description="Only this kind (ending in '.': every kind with that prefix).",
            ),
            Param(
                name="after",
                kind="int",
                default=0,
                minimum=0,
                maximum=MAX_ID,
                description="Only events with a larger seq (next_after of the last page).",
            ),
            Param(
                name="limit",
                kind="int",
                default=100,
                minimum=1,
                maximum=1000,
                description="Page size.",
            ),
        ),
        answer=EventPage,
        errors=(422,),
    ),
)


# -- the app ----------------------------------------------------------------------------


def create_app(
    daemon: Daemon, tokens: Tokens, *, max_body: int, streams: set[trio.CancelScope]
) -> Starlette:
    """The Starlette app serving :data:`ENDPOINTS` for ``daemon``."""

    def route(endpoint: Endpoint) -> Route:
        label = f"{endpoint.method} {endpoint.path}"

        async def handle(request: Request) -> Response:
            response = await _answer(request, endpoint)
            daemon.metrics.http[label, str(response.status_code)] += 1
            return response

        async def _answer(request: Request, endpoint: Endpoint) -> Response:
            who = None
            try:
                if endpoint.role != PUBLIC:
                    who = tokens.identify(request.headers.get("authorization"))
                    if who is None:
                        raise HttpError(
                            401,
                            "unauthorized",
                            "a valid bearer token is required (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"},
                        )
                    needed = endpoint.role if isinstance(endpoint.role, Role) else None
                    if not who.role.may(needed):
                        allowed = "admin" if needed is Role.ADMIN else f"{needed.value} or admin"  # type: ignore[union-attr]
                        raise HttpError(
                            403,
                            "forbidden",
                            f"a {who.role.value} token may not do this; it needs {allowed}",
                        )
                call = Call(
                    request=request,
                    endpoint=endpoint,
                    who=who,
                    daemon=daemon,
                    tokens=tokens,
                    streams=streams,
                    max_body=max_body,
                )
                return await endpoint.handler(call)
            except HttpError as exc:
                return _error(exc)
            except Exception:
                logger.exception("%s %s failed", request.method, request.url.path)
                return _error(
                    HttpError(500, "internal", "the daemon failed to answer; see its log")
                )

        return Route(endpoint.path, handle, methods=[endpoint.method], name=endpoint.name)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        daemon.metrics.http["unmatched", str(exc.status_code)] += 1
        message = {
            404: f"no endpoint {request.url.path[:200]!r}; see /openapi.json",
            405: f"{request.method} is not allowed on {request.url.path[:200]!r}",
        }.get(exc.status_code, str(exc.detail))
        return _error(HttpError(exc.status_code, code, message, headers=dict(exc.headers or {})))

    return Starlette(
        routes=[route(endpoint) for endpoint in ENDPOINTS],
        exception_handlers={HTTPException: http_error},
    )


# -- OpenAPI ----------------------------------------------------------------------------

_REASONS = {
    400: "Malformed request (the body is not JSON).",
    401: "No token, or an unknown one.",
    403: "The token's role may not do this.",
    404: "No such goal, review or endpoint.",
    409: "Conflicts with the current state.",
    413: "The body is over the size limit.",
    422: "The body or a query parameter is invalid; problems names each field.",
    429: "The queue is full; see Retry-After.",
    503: "Not now: starting, draining, or the journal cannot commit.",
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`ENDPOINTS`."""
    components: dict[str, Any] = {}
    error = json_schema(ErrorBody, components)
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        operation: dict[str, Any] = {"operationId": endpoint.name, "summary": endpoint.summary}
        parameters: list[dict[str, Any]] = []
        if "{goal_id}" in endpoint.path:
            parameters.append(GOAL_ID)
        if "{review_id}" in endpoint.path:
            parameters.append(REVIEW_ID)
        parameters.extend(param.schema() for param in endpoint.params)
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": json_schema(endpoint.body, components)}},
            }
        responses: dict[str, Any] = {}
        if isinstance(endpoint.answer, tuple):
            media, description = endpoint.answer
            responses[str(endpoint.ok)] = {"description": description, "content": {media: {}}}
        else:
            schema = json_schema(endpoint.answer, components)
            content = {"application/json": {"schema": schema}}
            responses[str(endpoint.ok)] = {"description": "OK", "content": content}
            if endpoint.ok == 202:
                responses["200"] = {
                    "description": "Already done (same idempotency key, or already ended).",
                    "content": content,
                }
        codes = set(endpoint.errors)
        if endpoint.role != PUBLIC:
            codes |= {401, 403} if isinstance(endpoint.role, Role) else {401}
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _REASONS[code],
                "content": {"application/json": {"schema": error}},
            }
        if endpoint.role != PUBLIC:
            operation["security"] = [{"bearer": []}]
        operation["responses"] = responses
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "overstory daemon",
            "version": "1",
            "description": (
                "Runs one supervisor tree as a service. Every endpoint but /healthz and "
                "/readyz needs a bearer token; roles: submit, review, admin."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
