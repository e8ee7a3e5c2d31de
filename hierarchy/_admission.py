"""Admitting goals ``max_concurrent`` at a time, in the order they were submitted.

A goal's place is taken when it is submitted, not when its task first runs: trio does
not run newly spawned tasks in spawn order, so a limiter that tasks queue on themselves
(``trio.CapacityLimiter``) admits goals submitted together in an order of trio's choosing.
"""

from __future__ import annotations

from collections import deque

import trio

__all__ = ["Admission", "Ticket"]


class Ticket:
    """One goal's place: admitted at once, or waiting in line."""

    __slots__ = ("admitted", "left", "task")

    def __init__(self) -> None:
        self.admitted = False
        self.left = False  # gave up its place (cancelled or timed out while waiting)
        self.task: trio.lowlevel.Task | None = None  # the goal's task, while it waits


class Admission:
    """At most ``limit`` goals hold a slot; the others wait in submission order.

    A ticket that leaves the line stays in it, marked, until the line reaches it: leaving
    costs nothing, and a dropped place is a few dozen bytes.
    """

    __slots__ = ("_free", "_line")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._line: deque[Ticket] = deque()

    def ticket(self) -> Ticket:
        """Take a place now: a slot if one is free and nobody waits, else the end of
        the line."""
        ticket = Ticket()
        if self._free > 0 and not self._line:
            self._free -= 1
            ticket.admitted = True
        else:
            self._line.append(ticket)
        return ticket

    async def wait(self, ticket: Ticket) -> None:
        """Return once ``ticket`` holds a slot (at once if it does already; a checkpoint
        either way). Cancelled while waiting, the ticket leaves the line and raises
        ``trio.Cancelled``; cancelled after its slot was handed over, it keeps the slot,
        which the caller gives back with :meth:`release` as always."""
        if ticket.admitted:
            await trio.lowlevel.checkpoint()
            return
        ticket.task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            ticket.task = None
            ticket.left = True
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def release(self, ticket: Ticket) -> None:
        """Give back ``ticket``'s slot (nothing, if it never held one) to the first in
        line. Idempotent for tickets that left."""
        if not ticket.admitted:
            ticket.left = True  # never ran: if still in line, it is skipped
            return
        ticket.admitted = False
        while self._line:
            following = self._line.popleft()
            if following.left:
                continue
            following.admitted = True
            if following.task is not None:
                task, following.task = following.task, None
                trio.lowlevel.reschedule(task)
            return
        self._free += 1
