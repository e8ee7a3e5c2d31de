"""LLM agents: model clients, LLM leaves, and routing, planning and synthesis by model.

Everything here is re-exported by ``overstory``; the scripted model for tests lives in
:mod:`overstory.testing`.
"""

import importlib as _importlib
import typing as _typing

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


def __getattr__(name: str) -> _typing.Any:
    # Imported on first use: the HTTP client behind it is only needed by
    # trees that talk to a model endpoint.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
