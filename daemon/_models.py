"""What the HTTP API reads and writes: attrs classes, one strict converter, their schemas.

Request bodies are structured with :data:`api` (a cattrs converter that takes JSON types
as they are: no ``"5"`` for an int, no ``true`` for a number) and validated by the
classes' own validators; :func:`structure` turns every failure into a list of
:class:`Problem`, each naming the field. The OpenAPI document's schemas are generated
from the same classes (:func:`json_schema`), so the document cannot drift from the
validation.
"""

from __future__ import annotations

# The vocabulary is split by idea (fields, requests, responses, the converter, schemas);
# this module stays the one place the rest of the daemon imports it from.
from overstory.daemon._model_convert import InvalidBody, api, structure
from overstory.daemon._model_convert import unstructure as unstructure  # for the API, not __all__
from overstory.daemon._model_requests import EditReview, RejectReview, SubmitGoal
from overstory.daemon._model_responses import (
    AttemptView,
    ErrorBody,
    EventPage,
    EventView,
    GoalDetail,
    GoalPage,
    GoalStatus,
    GoalSummary,
    HealthView,
    NodeView,
    Problem,
    ReviewList,
    ReviewStatus,
    ReviewView,
    StepDone,
    TraceView,
    TreeView,
)
from overstory.daemon._model_schema import json_schema

__all__ = [
    "AttemptView",
    "EditReview",
    "ErrorBody",
    "EventPage",
    "EventView",
    "GoalDetail",
    "GoalPage",
    "GoalStatus",
    "GoalSummary",
    "HealthView",
    "InvalidBody",
    "NodeView",
    "Problem",
    "RejectReview",
    "ReviewList",
    "ReviewStatus",
    "ReviewView",
    "StepDone",
    "SubmitGoal",
    "TraceView",
    "TreeView",
    "api",
    "json_schema",
    "structure",
]
