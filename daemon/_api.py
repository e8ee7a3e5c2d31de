"""The HTTP API: an ASGI app built from one table of endpoints.

The table (:data:`ENDPOINTS`) gives each endpoint its method, path, role, request body,
query parameters and responses; the routes and the OpenAPI document are both made
from it. Every answer other than a 2xx is an :class:`ErrorBody`. Bad input of any
kind gets a 4xx naming the field; an unexpected exception is logged and answered 500
(none is expected: the fuzz tests hold the API to that).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

# The handlers live with their resource; this module keeps the one table they are
# served and documented from.
from overstory.daemon._api_goals import (
    cancel_goal,
    get_goal,
    goal_events,
    goal_trace,
    list_goals,
    submit_goal,
)
from overstory.daemon._api_http import (
    LIMIT,
    MAX_ID,
    PUBLIC,
    Call,
    Endpoint,
    HttpError,
    Param,
    _error,
    _json,
)
from overstory.daemon._api_introspection import audit, healthz, metrics, readyz, tree
from overstory.daemon._api_reviews import (
    approve_review,
    edit_review,
    get_review,
    list_reviews,
    reject_review,
)
from overstory.daemon._auth import Role, Tokens
from overstory.daemon._models import (
    EditReview,
    ErrorBody,
    EventPage,
    GoalDetail,
    GoalPage,
    GoalStatus,
    GoalSummary,
    HealthView,
    RejectReview,
    ReviewList,
    ReviewStatus,
    ReviewView,
    SubmitGoal,
    TraceView,
    TreeView,
    json_schema,
)
from overstory.daemon._service import Daemon

__all__ = ["ENDPOINTS", "HttpError", "create_app", "openapi"]

logger = logging.getLogger("overstory.daemon")


async def openapi_json(call: Call) -> Response:
    return _json(openapi())


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


#: The status counted for a request whose client disconnected before sending all of it.
CLIENT_CLOSED = 499


def create_app(
    daemon: Daemon, tokens: Tokens, *, max_body: int, streams: set[trio.CancelScope]
) -> ASGIApp:
    """The ASGI app serving :data:`ENDPOINTS` for ``daemon``.

    A request for a path without parameters (``POST /v1/goals`` above all) goes straight
    to its endpoint by one dict lookup, skipping Starlette's middleware stack and router
    (about 80,000 CPU instructions a request under callgrind, 4% of a ``/healthz``).
    Starlette routes the rest, and answers 404, 405 and ``HEAD``.
    """

    def handler(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        label = f"{endpoint.method} {endpoint.path}"

        async def handle(request: Request) -> Response:
            response = await _answer(request, endpoint)
            daemon.metrics.http[label, str(response.status_code)] += 1
            return response

        return handle

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
        except ClientDisconnect:
            # Gone before its request was read: nobody to answer and nothing the daemon
            # did wrong. Counted as 499, the code nginx gives such a request.
            logger.info(
                "%s %s: the client disconnected before sending its whole request",
                request.method,
                request.url.path,
            )
            return Response(status_code=CLIENT_CLOSED)
        except Exception:
            logger.exception("%s %s failed", request.method, request.url.path)
            return _error(HttpError(500, "internal", "the daemon failed to answer; see its log"))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        daemon.metrics.http["unmatched", str(exc.status_code)] += 1
        message = {
            404: f"no endpoint {request.url.path[:200]!r}; see /openapi.json",
            405: f"{request.method} is not allowed on {request.url.path[:200]!r}",
        }.get(exc.status_code, str(exc.detail))
        return _error(HttpError(exc.status_code, code, message, headers=dict(exc.headers or {})))

    handlers = {endpoint: handler(endpoint) for endpoint in ENDPOINTS}
    router = Starlette(
        routes=[
            Route(endpoint.path, handle, methods=[endpoint.method], name=endpoint.name)
            for endpoint, handle in handlers.items()
        ],
        exception_handlers={HTTPException: http_error},
    )
    # Starlette answers a path with a stray trailing slash by a redirect built from the
    # client's Host header; here it is an unknown path like any other (404, JSON).
    router.router.redirect_slashes = False
    exact = {
        (endpoint.method, endpoint.path): handle
        for endpoint, handle in handlers.items()
        if "{" not in endpoint.path
    }

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handle = exact.get((scope["method"], scope["path"]))
            if handle is not None:
                response = await handle(Request(scope, receive))
                await response(scope, receive, send)
                return
        await router(scope, receive, send)

    return app


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
