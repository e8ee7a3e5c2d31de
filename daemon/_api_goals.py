"""The goal endpoints' handlers: submit, list, read, cancel, follow and trace a goal."""

from __future__ import annotations

from starlette.responses import Response

from overstory.daemon import _store as store
from overstory.daemon._api_events import EventStream
from overstory.daemon._api_http import Call, HttpError, _goal_id, _json, decimal_id
from overstory.daemon._journal import JournalError
from overstory.daemon._models import GoalPage, GoalStatus, Problem, SubmitGoal, TraceView
from overstory.daemon._service import Busy, Draining, Mismatch


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
    # Any other Last-Event-ID is ignored, as an event stream's client may send it.
    last_id = decimal_id(call.request.headers.get("last-event-id", ""))
    if last_id is not None:
        after = max(after, last_id)
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
