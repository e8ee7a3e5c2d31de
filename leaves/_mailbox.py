"""A first-come, first-served hand-off between tasks, for the agent pool's hot path.

It keeps the semantics of an unbounded trio memory channel that the pool used (an item
put while tasks wait goes straight to the one that waited longest; closing wakes every
waiter) without its cost on the path a crash loop takes every time: a memory channel
raises ``WouldBlock`` on each empty ``receive_nowait`` and again inside ``receive``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

import trio

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Items handed from ``put`` to ``take``; ``take`` returns ``None`` once closed."""

    __slots__ = ("_items", "_waiters", "closed")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        # Each waiting task, oldest first, with the list its item is handed over in.
        self._waiters: OrderedDict[trio.lowlevel.Task, list[T]] = OrderedDict()
        self.closed = False

    @trio.lowlevel.enable_ki_protection
    def put(self, item: T) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the mailbox is closed")
        if self._waiters:
            task, slot = self._waiters.popitem(last=False)
            slot.append(item)
            trio.lowlevel.reschedule(task)
        else:
            self._items.append(item)

    @trio.lowlevel.enable_ki_protection
    def take_nowait(self) -> T | None:
        """The oldest item, or ``None`` when there is none (closed or not)."""
        return self._items.popleft() if self._items else None

    @trio.lowlevel.enable_ki_protection
    async def take(self) -> T | None:
        """The oldest item, waiting for one; ``None`` when closed and empty. A checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._items:
            item = self._items.popleft()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        if self.closed:
            return None
        task = trio.lowlevel.current_task()
        slot: list[T] = []
        self._waiters[task] = slot

        def abort(_: object) -> trio.lowlevel.Abort:
            del self._waiters[task]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return slot[0] if slot else None

    @trio.lowlevel.enable_ki_protection
    def close(self) -> None:
        """Refuse further items and wake every waiter with ``None``; items left are still
        taken."""
        self.closed = True
        waiters, self._waiters = self._waiters, OrderedDict()
        for task in waiters:
            trio.lowlevel.reschedule(task)
