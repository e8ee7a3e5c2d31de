"""The request bodies the HTTP API accepts, with the bounds their fields enforce."""

from __future__ import annotations

# ``Any`` is a runtime import on purpose: cattrs and json_schema resolve these classes'
# string annotations against this module's globals.
from typing import Any

import attrs

from overstory.daemon._model_fields import doc, number, text

MAX_GOAL_LENGTH = 65_536
MAX_KEY_LENGTH = 200
MAX_PRIORITY = 1000
MAX_TIMEOUT = 30 * 86_400.0
MAX_REASON_LENGTH = 65_536


@attrs.frozen(kw_only=True)
class SubmitGoal:
    """A goal to run."""

    goal: str = text(max_length=MAX_GOAL_LENGTH, description="What to do, in plain language.")
    input: Any = attrs.field(
        default=None, metadata=doc("Any JSON value, handed to the tree as the goal's input.")
    )
    timeout: float | None = number(
        default=None,
        minimum=0,
        maximum=MAX_TIMEOUT,
        exclusive_minimum=True,
        description="Seconds from the goal's first start until it is cancelled as timed_out.",
    )
    priority: int = number(
        default=0,
        minimum=-MAX_PRIORITY,
        maximum=MAX_PRIORITY,
        description="Queued goals start highest priority first, then oldest first.",
    )
    idempotency_key: str | None = text(
        default=None,
        max_length=MAX_KEY_LENGTH,
        description="Submitting the same key again returns the first goal instead of a new one.",
    )


@attrs.frozen(kw_only=True)
class RejectReview:
    """Send the output back: the step runs again and its agent sees ``reason``."""

    reason: str = text(
        max_length=MAX_REASON_LENGTH, description="Feedback for the agent (ctx.feedback)."
    )


@attrs.frozen(kw_only=True)
class EditReview:
    """Hand on ``output`` instead of what the agent produced."""

    output: Any = attrs.field(metadata=doc("The replacement output (any JSON value)."))
