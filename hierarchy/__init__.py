"""Trees: specs, tasks, plans, routing, outcomes, and the runner."""

import typing as _typing

from overstory._lazy import lazy_names as _lazy_names
from overstory.hierarchy._budget import Budget as Budget
from overstory.hierarchy._budget import UsageLine as UsageLine
from overstory.hierarchy._budget import UsageSummary as UsageSummary
from overstory.hierarchy._context import Context as Context
from overstory.hierarchy._context import Memory as Memory
from overstory.hierarchy._handle import GoalHandle as GoalHandle
from overstory.hierarchy._layer import Layer as Layer
from overstory.hierarchy._outcome import FailureRecord as FailureRecord
from overstory.hierarchy._outcome import Outcome as Outcome
from overstory.hierarchy._outcome import Status as Status
from overstory.hierarchy._outcome import StepRecord as StepRecord
from overstory.hierarchy._plan import Step as Step
from overstory.hierarchy._review import Approve as Approve
from overstory.hierarchy._review import Edit as Edit
from overstory.hierarchy._review import Reject as Reject
from overstory.hierarchy._review import ReviewRequest as ReviewRequest
from overstory.hierarchy._review import auto_approve as auto_approve
from overstory.hierarchy._routing import Candidate as Candidate
from overstory.hierarchy._routing import LexicalRouter as LexicalRouter
from overstory.hierarchy._routing import RouteRequest as RouteRequest
from overstory.hierarchy._runner import NodeHealth as NodeHealth
from overstory.hierarchy._runner import Runner as Runner
from overstory.hierarchy._runner import ShutdownReport as ShutdownReport
from overstory.hierarchy._spec import Strategic as Strategic
from overstory.hierarchy._spec import Tactical as Tactical
from overstory.hierarchy._task import Handoff as Handoff
from overstory.hierarchy._task import Task as Task
from overstory.hierarchy._tree import Tree as Tree

if _typing.TYPE_CHECKING:
    from overstory.hierarchy._serde import converter as converter
    from overstory.hierarchy._serde import from_json as from_json
    from overstory.hierarchy._serde import to_json as to_json

_LAZY = {
    "converter": "overstory.hierarchy._serde",
    "from_json": "overstory.hierarchy._serde",
    "to_json": "overstory.hierarchy._serde",
}

__all__ = [
    "Approve",
    "Budget",
    "Candidate",
    "Context",
    "Edit",
    "FailureRecord",
    "GoalHandle",
    "Handoff",
    "Layer",
    "LexicalRouter",
    "Memory",
    "NodeHealth",
    "Outcome",
    "Reject",
    "ReviewRequest",
    "RouteRequest",
    "Runner",
    "ShutdownReport",
    "Status",
    "Step",
    "StepRecord",
    "Strategic",
    "Tactical",
    "Task",
    "Tree",
    "UsageLine",
    "UsageSummary",
    "auto_approve",
    "converter",
    "from_json",
    "to_json",
]


# Imported on first use: cattrs is only needed by code that stores records as JSON.
__getattr__, __dir__ = _lazy_names(globals(), _LAZY, __all__)
