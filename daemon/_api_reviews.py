"""The review endpoints' handlers: list and read reviews, approve, reject or edit one."""

from __future__ import annotations

from starlette.responses import Response

from overstory.daemon import _store as store
from overstory.daemon._api_http import Call, HttpError, _json, _review_id
from overstory.daemon._journal import JournalError
from overstory.daemon._models import EditReview, RejectReview, ReviewList, ReviewStatus
from overstory.hierarchy._review import Approve, Edit, Reject


async def list_reviews(call: Call) -> Response:
    status = call.param("status")
    reviews = await call.daemon.reviews(
        status=ReviewStatus(status) if status != "all" else None,
        goal_id=call.param("goal_id"),
        limit=call.param("limit"),
    )
    return _json(ReviewList(reviews=reviews))


async def get_review(call: Call) -> Response:
    review = await call.daemon.get_review(_review_id(call))
    if review is None:
        raise HttpError(404, "not_found", f"no review {_review_id(call)}")
    return _json(review)


async def _decide(call: Call, decision: Approve | Reject | Edit) -> Response:
    assert call.who is not None
    review_id = _review_id(call)
    try:
        review = await call.daemon.decide(review_id, decision, call.who)
    except store.NotFound:
        raise HttpError(404, "not_found", f"no review {review_id}") from None
    except store.Conflict as exc:
        raise HttpError(409, "already_decided", str(exc)) from None
    except JournalError as exc:
        raise HttpError(503, "journal_unavailable", str(exc)) from None
    return _json(review)


async def approve_review(call: Call) -> Response:
    _review_id(call)
    return await _decide(call, Approve())


async def reject_review(call: Call) -> Response:
    _review_id(call)
    body: RejectReview = await call.body()
    return await _decide(call, Reject(feedback=body.reason))


async def edit_review(call: Call) -> Response:
    _review_id(call)
    body: EditReview = await call.body()
    return await _decide(call, Edit(output=body.output))
