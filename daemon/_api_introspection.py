"""The endpoints that look at the daemon itself: health, readiness, metrics, tree, audit.

(``/openapi.json`` is answered in :mod:`overstory.daemon._api`, next to the table it
describes.)
"""

from __future__ import annotations

from starlette.responses import Response

from overstory.daemon._api_http import Call, _json
from overstory.daemon._metrics import CONTENT_TYPE, render
from overstory.daemon._models import EventPage, HealthView


async def healthz(call: Call) -> Response:
    return _json(HealthView(status="ok"))


async def readyz(call: Call) -> Response:
    daemon = call.daemon
    if daemon.accepting:
        return _json(HealthView(status="ready"))
    return _json(HealthView(status="draining" if daemon.draining else "starting"), 503)


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
