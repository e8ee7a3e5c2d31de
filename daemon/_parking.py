"""Review parking: a goal waits on a committed pending review until a human decides.

A decision is committed before the goal is woken, so a restart in between resumes the
goal, which asks again with the same (goal, key, round) and gets the stored decision.
"""

from __future__ import annotations

import json
import time
from functools import partial

import attrs
import trio

from overstory.daemon import _store as store
from overstory.daemon._auth import Identity
from overstory.daemon._feed import _Feed
from overstory.daemon._models import EventView, ReviewStatus, ReviewView
from overstory.hierarchy._review import Approve, Decision, Edit, Reject, ReviewRequest


@attrs.define(eq=False)
class _Parked:
    """A review some goal waits on."""

    decided: trio.Event = attrs.field(factory=trio.Event)
    decision: Decision | None = None


class _Reviews(_Feed):
    """The tree's reviewer and the API's review verbs."""

    # Set by Daemon.__init__; declared here for the type checker.
    _parked: dict[int, _Parked]

    async def review(self, request: ReviewRequest) -> Decision:
        """The tree's reviewer: park the goal until a decision is committed."""
        try:
            output = json.dumps(request.output)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the output under review is not JSON-serialisable: {exc}") from None
        review, _ = await self.journal.write(
            partial(store.open_review, request=request, output=output, at=time.time()),
            on_commit=self._review_opened,
        )
        if review.status is not ReviewStatus.PENDING:
            self._log(
                request.goal_id,
                "review.replayed",
                "daemon",
                {"review": review.id, "decision": review.status.value},
            )
            return _decision(review)
        parked = self._parked.setdefault(review.id, _Parked())
        try:
            await parked.decided.wait()
        finally:
            if self._parked.get(review.id) is parked:
                del self._parked[review.id]
        assert parked.decision is not None
        return parked.decision

    def _review_opened(self, result: tuple[ReviewView, EventView | None]) -> None:
        review, event = result
        if review.status is ReviewStatus.PENDING:
            self._parked.setdefault(review.id, _Parked())
        if event is not None:
            self._broadcast(event)

    async def decide(self, review_id: int, decision: Decision, who: Identity) -> ReviewView:
        """Commit a decision on a pending review, then wake the goal waiting on it.
        Raises :class:`store.NotFound` or :class:`store.Conflict` (not pending)."""
        if isinstance(decision, Reject):
            status, text = ReviewStatus.REJECTED, decision.feedback
        elif isinstance(decision, Edit):
            status, text = ReviewStatus.EDITED, json.dumps(decision.output)
        else:
            status, text = ReviewStatus.APPROVED, None

        def committed(result: tuple[ReviewView, EventView]) -> None:
            review, event = result
            parked = self._parked.pop(review.id, None)
            if parked is not None:
                parked.decision = decision
                parked.decided.set()
            self._broadcast(event)

        review, _ = await self.journal.write(
            partial(
                store.decide_review,
                review_id=review_id,
                status=status,
                decision=text,
                actor=who.role.value,
                token=who.token,
                at=time.time(),
            ),
            on_commit=committed,
        )
        return review

    async def reviews(
        self, *, status: ReviewStatus | None, goal_id: str | None, limit: int
    ) -> list[ReviewView]:
        return await self.journal.read(
            partial(store.list_reviews, status=status, goal_id=goal_id, limit=limit)
        )

    async def get_review(self, review_id: int) -> ReviewView | None:
        return await self.journal.read(partial(store.get_review, review_id=review_id))


def _decision(review: ReviewView) -> Decision:
    if review.status is ReviewStatus.REJECTED:
        return Reject(feedback=review.reason or "")
    if review.status is ReviewStatus.EDITED:
        return Edit(output=review.edited_output)
    return Approve()
