"""A submitted goal as its submitter holds it: wait for the outcome, or cancel."""

from __future__ import annotations

from typing import Any

import trio

from overstory.hierarchy._context import Memory
from overstory.hierarchy._outcome import Outcome, Status

__all__ = ["GoalHandle"]


class GoalHandle:
    """A submitted goal: wait for its outcome or cancel it."""

    __slots__ = ("_cancel_requested", "_done", "_memory", "_outcome", "_scope", "goal", "id")

    def __init__(
        self, goal_id: str, goal: str, scope: trio.CancelScope, memory: Memory | None = None
    ) -> None:
        self.id = goal_id
        self.goal = goal
        self._scope = scope
        self._memory = memory if memory is not None else Memory()
        self._done = trio.Event()
        self._outcome: Outcome | None = None
        self._cancel_requested = False

    def __repr__(self) -> str:
        status = self._outcome.status.value if self._outcome else "running"
        return f"<GoalHandle {self.id} {status}>"

    @property
    def done(self) -> bool:
        return self._outcome is not None

    @property
    def status(self) -> Status | None:
        """The final status, or ``None`` while the goal runs."""
        return self._outcome.status if self._outcome is not None else None

    def memory(self) -> dict[str, Any]:
        """A copy of the goal's shared memory as it is now (as it ended, once done).

        The daemon stores it with each checkpoint and passes it back as ``memory=`` when
        it resumes the goal."""
        return self._memory.snapshot()

    def cancel(self) -> None:
        """Cancel the whole goal: every step, every agent below it. Idempotent.

        The agents' ``finally`` blocks run; the outcome becomes CANCELLED (unless the goal
        had already ended).
        """
        self._cancel_requested = True
        self._scope.cancel()

    async def outcome(self) -> Outcome:
        """Wait until the goal ends and return its outcome. Cancelling the wait does not
        cancel the goal."""
        await self._done.wait()
        assert self._outcome is not None
        return self._outcome

    def _finish(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._done.set()
