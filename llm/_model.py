"""The model interface: one chat-completion request in, one response out.

A model is any object with a ``name``, a ``price`` and an async ``complete(request)``.
:class:`~overstory.OpenAIModel` talks to OpenAI-compatible HTTP endpoints and
:class:`overstory.testing.ScriptedModel` answers from a script. Spans, budget charges,
tool calls and output validation are not the model's business: :func:`overstory.ask`
does them around ``complete``, the same way for every model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from overstory._checks import finite_non_negative

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Message",
    "Model",
    "Price",
    "Role",
    "ToolCall",
    "ToolSpec",
    "estimate_tokens",
]

Role = Literal["system", "user", "assistant", "tool"]


def _calls(value: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(value)


def _messages(value: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(value)


def _tools(value: Iterable[ToolSpec]) -> tuple[ToolSpec, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class ToolCall:
    """The model asks for one tool call; ``arguments`` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str = "{}"


@attrs.frozen(kw_only=True)
class Message:
    """One chat message. ``tool_calls`` is set on assistant messages that call tools;
    ``tool_call_id`` on the ``tool`` message that answers one call."""

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_calls)
    tool_call_id: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        return cls(role="assistant", content=content)


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A tool as the model sees it: a name, a description and a JSON schema of its
    parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class ChatRequest:
    """One chat-completion request.

    ``schema`` asks for a JSON answer of that shape (named ``schema_name``); ``agent`` is
    the path of the agent asking and ``purpose`` what for (``"answer"``, ``"route"``,
    ``"plan"``, ``"aggregate"``): error messages and scripted models use them.
    ``on_text``, when given, receives the answer's text as it arrives (streaming). Text
    it received is never taken back: a model whose stream fails after some text arrived
    raises (:class:`~overstory.ProviderError`) rather than retrying and sending the text
    again, as the caller has seen partial output.
    """

    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    tools: tuple[ToolSpec, ...] = attrs.field(default=(), converter=_tools)
    schema: Mapping[str, Any] | None = None
    schema_name: str = "answer"
    temperature: float | None = None
    max_tokens: int | None = None
    agent: str = ""
    purpose: str = "answer"
    on_text: Callable[[str], None] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def prompt(self) -> str:
        """The text of the user messages, one per line (what scripts match against)."""
        return "\n".join(m.content or "" for m in self.messages if m.role == "user")


@attrs.frozen(kw_only=True)
class ChatResponse:
    """What the model answered, and what it cost in tokens.

    ``estimated`` says the provider reported no usage, so the token counts are an
    estimate (:func:`estimate_tokens`), which budgets still enforce.
    """

    message: Message
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    finish_reason: str | None = None
    estimated: bool = False


@attrs.frozen
class Price:
    """What a model costs, per million input and output tokens (in dollars, usually)."""

    input: float = attrs.field(validator=finite_non_negative())
    output: float = attrs.field(validator=finite_non_negative())

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost of one call."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


@runtime_checkable
class Model(Protocol):
    """A chat model. Implement ``complete`` to plug in any provider.

    ``complete`` raises :class:`~overstory.ProviderError` for failures worth retrying
    later and :class:`~overstory.ProviderRejected` for refusals; it must let
    ``trio.Cancelled`` through.
    """

    @property
    def name(self) -> str:
        """The model's name, as in ``chat {name}`` spans."""
        ...

    @property
    def price(self) -> Price | None:
        """What a call costs (``None``: cost is not counted, tokens still are)."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer one request."""
        ...


def estimate_tokens(texts: Sequence[str | None]) -> int:
    """A rough token count: one token per four characters, at least one per text."""
    return sum(max(1, math.ceil(len(text) / 4)) for text in texts if text)
