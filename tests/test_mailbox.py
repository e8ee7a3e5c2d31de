"""The agent pool's mailbox: the hand-off semantics of an unbounded memory channel."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from overstory.leaves._mailbox import Mailbox


async def test_items_wait_in_order_without_a_taker() -> None:
    """Items put with nobody waiting are taken oldest first, with or without waiting."""
    box: Mailbox[int] = Mailbox()
    assert box.take_nowait() is None
    box.put(1)
    box.put(2)
    assert box.take_nowait() == 1
    assert await box.take() == 2


async def test_an_item_goes_to_the_task_that_waited_longest() -> None:
    """Waiting takers are served first come, first served, each with its own item."""
    box: Mailbox[str] = Mailbox()
    got: list[tuple[int, str | None]] = []

    async def taker(n: int) -> None:
        got.append((n, await box.take()))

    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(taker, n)
            await trio.testing.wait_all_tasks_blocked()
        box.put("a")
        box.put("b")
        # A newcomer does not overtake the waiters: the items were handed over already.
        assert box.take_nowait() is None
        box.put("c")
    assert sorted(got) == [(0, "a"), (1, "b"), (2, "c")]  # they wake in any order


async def test_close_wakes_waiters_with_none_and_refuses_items() -> None:
    """Closing wakes every waiter with None; items left are still taken; put then raises."""
    box: Mailbox[int] = Mailbox()
    box.put(7)
    assert await box.take() == 7
    woken: list[int | None] = []

    async def taker() -> None:
        woken.append(await box.take())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(taker)
        nursery.start_soon(taker)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    assert woken == [None, None]
    assert await box.take() is None
    with pytest.raises(trio.ClosedResourceError):
        box.put(1)


async def test_a_cancelled_taker_leaves_the_queue() -> None:
    """A taker cancelled while waiting is removed: the next item goes to the next waiter."""
    box: Mailbox[int] = Mailbox()
    got: list[tuple[str, int | None]] = []

    async def taker(tag: str) -> None:
        got.append((tag, await box.take()))

    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as doomed:
            doomed.start_soon(taker, "first")
            await trio.testing.wait_all_tasks_blocked()
            doomed.cancel_scope.cancel()
        nursery.start_soon(taker, "second")
        await trio.testing.wait_all_tasks_blocked()
        box.put(3)
    assert got == [("second", 3)]
