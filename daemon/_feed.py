"""The audit log and its live followers: every change is an event, streamed as it commits.

The first layer of :class:`overstory.daemon._service.Daemon` (a base class rather than a
separate object, so the daemon's methods and state stay where the API and the tree find
them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import trio

from overstory.daemon import _store as store
from overstory.daemon._journal import Journal
from overstory.daemon._models import EventView

#: How many events a slow follower may fall behind before its stream is closed.
SUBSCRIBER_BUFFER = 1024


class _Feed:
    """Appends audit events and hands each committed one to the goal's followers."""

    # Set by Daemon.__init__; declared here for the type checker.
    journal: Journal
    _followers: dict[str, set[trio.MemorySendChannel[EventView | None]]]

    async def events(
        self, *, goal_id: str | None, kind: str | None, after: int, limit: int
    ) -> list[EventView]:
        return await self.journal.read(
            partial(store.events, goal_id=goal_id, kind=kind, after=after, limit=limit)
        )

    @contextmanager
    def follow(self, goal_id: str) -> Iterator[trio.MemoryReceiveChannel[EventView | None]]:
        """A channel of the goal's events committed from now on; closed when the goal
        ends. ``None`` in it means the follower fell behind and must re-read."""
        send, receive = trio.open_memory_channel[EventView | None](SUBSCRIBER_BUFFER)
        followers = self._followers.setdefault(goal_id, set())
        followers.add(send)
        try:
            yield receive
        finally:
            followers.discard(send)
            if not followers and self._followers.get(goal_id) is followers:
                del self._followers[goal_id]
            send.close()
            receive.close()

    # -- the audit log ---------------------------------------------------------------------

    def _log(self, goal_id: str | None, kind: str, actor: str, data: dict[str, Any]) -> None:
        self.journal.append(
            partial(
                store.event, at=time.time(), goal_id=goal_id, kind=kind, actor=actor, data=data
            ),
            on_commit=self._broadcast,
        )

    def _broadcast(self, event: EventView) -> None:
        if event.goal_id is None:
            return
        for send in list(self._followers.get(event.goal_id, ())):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                self._followers[event.goal_id].discard(send)
                send.close()
            except trio.ClosedResourceError:
                self._followers[event.goal_id].discard(send)
