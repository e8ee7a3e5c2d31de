"""overstory: teams of AI agents as supervisor trees, on trio.

``import overstory as ov`` gives the whole public surface::

    tree = ov.Tree("agency", ov.Strategic("director", plan=[...], children=[...]))
    outcome = trio.run(tree.run, "Qualify lead ACME")
"""

import typing as _typing

from overstory import telemetry as telemetry
from overstory._errors import AgentUnavailable as AgentUnavailable
from overstory._errors import AttemptTimeout as AttemptTimeout
from overstory._errors import BudgetExhausted as BudgetExhausted
from overstory._errors import CandidatesExhausted as CandidatesExhausted
from overstory._errors import ConfigurationError as ConfigurationError
from overstory._errors import DefinitionError as DefinitionError
from overstory._errors import Escalation as Escalation
from overstory._errors import Failure as Failure
from overstory._errors import Fatal as Fatal
from overstory._errors import HandoffLoop as HandoffLoop
from overstory._errors import NoCandidate as NoCandidate
from overstory._errors import OverstoryError as OverstoryError
from overstory._errors import PlanError as PlanError
from overstory._errors import ReviewRejected as ReviewRejected
from overstory._errors import RunnerClosed as RunnerClosed
from overstory._errors import StartError as StartError
from overstory._errors import SupervisorTripped as SupervisorTripped
from overstory._lazy import lazy_names as _lazy_names
from overstory.hierarchy import Approve as Approve
from overstory.hierarchy import Budget as Budget
from overstory.hierarchy import Candidate as Candidate
from overstory.hierarchy import Context as Context
from overstory.hierarchy import Edit as Edit
from overstory.hierarchy import FailureRecord as FailureRecord
from overstory.hierarchy import GoalHandle as GoalHandle
from overstory.hierarchy import Handoff as Handoff
from overstory.hierarchy import Layer as Layer
from overstory.hierarchy import LexicalRouter as LexicalRouter
from overstory.hierarchy import Memory as Memory
from overstory.hierarchy import NodeHealth as NodeHealth
from overstory.hierarchy import Outcome as Outcome
from overstory.hierarchy import Reject as Reject
from overstory.hierarchy import ReviewRequest as ReviewRequest
from overstory.hierarchy import RouteRequest as RouteRequest
from overstory.hierarchy import Runner as Runner
from overstory.hierarchy import ShutdownReport as ShutdownReport
from overstory.hierarchy import Status as Status
from overstory.hierarchy import Step as Step
from overstory.hierarchy import StepRecord as StepRecord
from overstory.hierarchy import Strategic as Strategic
from overstory.hierarchy import Tactical as Tactical
from overstory.hierarchy import Task as Task
from overstory.hierarchy import Tree as Tree
from overstory.hierarchy import UsageLine as UsageLine
from overstory.hierarchy import UsageSummary as UsageSummary
from overstory.hierarchy import auto_approve as auto_approve
from overstory.leaves import Agent as Agent
from overstory.leaves import AgentSpec as AgentSpec
from overstory.leaves import FunctionLeaf as FunctionLeaf
from overstory.leaves import leaf as leaf
from overstory.supervisors import Backoff as Backoff
from overstory.supervisors import Breaker as Breaker
from overstory.supervisors import EventKind as EventKind
from overstory.supervisors import Intensity as Intensity
from overstory.supervisors import Restart as Restart
from overstory.supervisors import Retry as Retry
from overstory.supervisors import Strategy as Strategy
from overstory.supervisors import SupervisionEvent as SupervisionEvent

if _typing.TYPE_CHECKING:
    from overstory import llm as llm
    from overstory._version import __version__ as __version__
    from overstory.hierarchy import converter as converter
    from overstory.hierarchy import from_json as from_json
    from overstory.hierarchy import to_json as to_json
    from overstory.llm import AuthenticationFailed as AuthenticationFailed
    from overstory.llm import ChatRequest as ChatRequest
    from overstory.llm import ChatResponse as ChatResponse
    from overstory.llm import InvalidOutput as InvalidOutput
    from overstory.llm import InvalidRequest as InvalidRequest
    from overstory.llm import LLMAggregator as LLMAggregator
    from overstory.llm import LLMPlanner as LLMPlanner
    from overstory.llm import LLMRouter as LLMRouter
    from overstory.llm import Message as Message
    from overstory.llm import Model as Model
    from overstory.llm import ModelError as ModelError
    from overstory.llm import OpenAIModel as OpenAIModel
    from overstory.llm import Price as Price
    from overstory.llm import ProviderError as ProviderError
    from overstory.llm import ProviderRejected as ProviderRejected
    from overstory.llm import ToolCall as ToolCall
    from overstory.llm import ToolSpec as ToolSpec
    from overstory.llm import ask as ask
    from overstory.llm import llm_leaf as llm_leaf

_LAZY = {
    "__version__": "overstory._version",
    "llm": "overstory.llm",
    "converter": "overstory.hierarchy._serde",
    "from_json": "overstory.hierarchy._serde",
    "to_json": "overstory.hierarchy._serde",
    "AuthenticationFailed": "overstory.llm",
    "ChatRequest": "overstory.llm",
    "ChatResponse": "overstory.llm",
    "InvalidOutput": "overstory.llm",
    "InvalidRequest": "overstory.llm",
    "LLMAggregator": "overstory.llm",
    "LLMPlanner": "overstory.llm",
    "LLMRouter": "overstory.llm",
    "Message": "overstory.llm",
    "Model": "overstory.llm",
    "ModelError": "overstory.llm",
    "OpenAIModel": "overstory.llm",
    "Price": "overstory.llm",
    "ProviderError": "overstory.llm",
    "ProviderRejected": "overstory.llm",
    "ToolCall": "overstory.llm",
    "ToolSpec": "overstory.llm",
    "ask": "overstory.llm",
    "llm_leaf": "overstory.llm",
}

__all__ = [
    "Agent",
    "AgentSpec",
    "AgentUnavailable",
    "Approve",
    "AttemptTimeout",
    "AuthenticationFailed",
    "Backoff",
    "Breaker",
    "Budget",
    "BudgetExhausted",
    "Candidate",
    "CandidatesExhausted",
    "ChatRequest",
    "ChatResponse",
    "ConfigurationError",
    "Context",
    "DefinitionError",
    "Edit",
    "Escalation",
    "EventKind",
    "Failure",
    "FailureRecord",
    "Fatal",
    "FunctionLeaf",
    "GoalHandle",
    "Handoff",
    "HandoffLoop",
    "Intensity",
    "InvalidOutput",
    "InvalidRequest",
    "LLMAggregator",
    "LLMPlanner",
    "LLMRouter",
    "Layer",
    "LexicalRouter",
    "Memory",
    "Message",
    "Model",
    "ModelError",
    "NoCandidate",
    "NodeHealth",
    "OpenAIModel",
    "Outcome",
    "OverstoryError",
    "PlanError",
    "Price",
    "ProviderError",
    "ProviderRejected",
    "Reject",
    "Restart",
    "Retry",
    "ReviewRejected",
    "ReviewRequest",
    "RouteRequest",
    "Runner",
    "RunnerClosed",
    "ShutdownReport",
    "StartError",
    "Status",
    "Step",
    "StepRecord",
    "Strategic",
    "Strategy",
    "SupervisionEvent",
    "SupervisorTripped",
    "Tactical",
    "Task",
    "ToolCall",
    "ToolSpec",
    "Tree",
    "UsageLine",
    "UsageSummary",
    "ask",
    "auto_approve",
    "converter",
    "from_json",
    "leaf",
    "llm_leaf",
    "telemetry",
    "to_json",
]


# Imported on first use: the model clients (the OpenTelemetry API and httpx behind
# them), cattrs and package metadata are only needed by trees that talk to a model,
# by code that stores records as JSON, and by whoever reads the version. Every full
# garbage collection walks what was imported, and every start of the CLI pays for it.
__getattr__, __dir__ = _lazy_names(globals(), _LAZY, __all__)
