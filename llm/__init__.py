"""LLM agents: model clients, LLM leaves, and routing, planning and synthesis by model.

Everything here is re-exported by ``overstory``; the scripted model for tests lives in
:mod:`overstory.testing`.
"""

import typing as _typing

from overstory._lazy import lazy_names as _lazy_names
from overstory.llm._aggregator import LLMAggregator as LLMAggregator
from overstory.llm._ask import ask as ask
from overstory.llm._errors import AuthenticationFailed as AuthenticationFailed
from overstory.llm._errors import InvalidOutput as InvalidOutput
from overstory.llm._errors import InvalidRequest as InvalidRequest
from overstory.llm._errors import ModelError as ModelError
from overstory.llm._errors import ProviderError as ProviderError
from overstory.llm._errors import ProviderRejected as ProviderRejected
from overstory.llm._leaf import llm_leaf as llm_leaf
from overstory.llm._model import ChatRequest as ChatRequest
from overstory.llm._model import ChatResponse as ChatResponse
from overstory.llm._model import Message as Message
from overstory.llm._model import Model as Model
from overstory.llm._model import Price as Price
from overstory.llm._model import ToolCall as ToolCall
from overstory.llm._model import ToolSpec as ToolSpec
from overstory.llm._planner import LLMPlanner as LLMPlanner
from overstory.llm._router import LLMRouter as LLMRouter

if _typing.TYPE_CHECKING:
    from overstory.llm._openai import OpenAIModel as OpenAIModel

_LAZY = {
    "OpenAIModel": "overstory.llm._openai",
}

__all__ = [
    "AuthenticationFailed",
    "ChatRequest",
    "ChatResponse",
    "InvalidOutput",
    "InvalidRequest",
    "LLMAggregator",
    "LLMPlanner",
    "LLMRouter",
    "Message",
    "Model",
    "ModelError",
    "OpenAIModel",
    "Price",
    "ProviderError",
    "ProviderRejected",
    "ToolCall",
    "ToolSpec",
    "ask",
    "llm_leaf",
]


# Imported on first use: the HTTP client behind it is only needed by
# trees that talk to a model endpoint.
__getattr__, __dir__ = _lazy_names(globals(), _LAZY, __all__)
