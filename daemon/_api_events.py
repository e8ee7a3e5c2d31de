"""A goal's events as server-sent events (the ASGI response behind its events endpoint)."""

from __future__ import annotations

import contextlib
import json

import trio
from starlette.types import Receive, Scope, Send

from overstory._text import utf8
from overstory.daemon._models import EventView, unstructure
from overstory.daemon._service import Daemon

HEARTBEAT = 15.0


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
        body = utf8(f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n")
        await send({"type": "http.response.body", "body": body, "more_body": True})
