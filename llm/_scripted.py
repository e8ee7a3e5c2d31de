"""A model that answers from a script: test trees without an LLM.

Rules are tried in the order they were added; the first that matches the request's
agent, purpose and prompt answers it, and a rule with ``times=`` stops matching once
used that often, so ``times=1`` rules script a sequence (an invalid answer, then a valid
one). A request no rule matches fails loudly with :class:`UnscriptedRequest`.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from overstory._errors import Fatal
from overstory.hierarchy._serde import converter
from overstory.llm._errors import AuthenticationFailed, InvalidRequest, ProviderError
from overstory.llm._model import (
    ChatRequest,
    ChatResponse,
    Message,
    Price,
    ToolCall,
    estimate_tokens,
)

__all__ = [
    "Fail",
    "Hang",
    "Reply",
    "ScriptedModel",
    "UnscriptedRequest",
    "tool_call",
]

_ids = itertools.count(1)


def tool_call(name: str, /, **arguments: Any) -> ToolCall:
    """A scripted answer that calls tool ``name`` with ``arguments``."""
    return ToolCall(id=f"call_{next(_ids)}", name=name, arguments=json.dumps(arguments))


@attrs.frozen
class Fail:
    """A scripted provider failure: the HTTP ``status`` (429, 503, 401, 400, ...) and the
    ``Retry-After`` seconds sent with it."""

    status: int
    retry_after: float | None = attrs.field(default=None, kw_only=True)
    message: str = attrs.field(default="scripted failure", kw_only=True)


@attrs.frozen
class Hang:
    """A scripted answer that never comes: the client's timeout ends the call."""


#: What a rule answers: text; a dict, list or attrs instance (sent as JSON); one or more
#: tool calls; a :class:`Fail` or :class:`Hang`; or a function of the request returning
#: one of those.
Reply = Any


class UnscriptedRequest(Fatal):
    """No rule of a :class:`ScriptedModel` matches a request. Fatal, so the test fails at
    once with this message instead of retrying."""


@attrs.define(eq=False)
class _Rule:
    agent: str | None
    purpose: str | None
    prompt: re.Pattern[str] | None
    reply: Any
    times: int | None
    usage: tuple[int, int] | None
    delay: float
    used: int = 0

    def matches(self, request: ChatRequest) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.purpose is not None and request.purpose != self.purpose:
            return False
        if self.agent is not None:
            name = request.agent.rsplit("/", 1)[-1]
            if not (
                fnmatch.fnmatchcase(request.agent, self.agent)
                or fnmatch.fnmatchcase(name, self.agent)
            ):
                return False
        return self.prompt is None or self.prompt.search(request.prompt) is not None


@attrs.frozen
class Answer:
    """A rule's answer to one request, resolved: what the server or the model sends."""

    message: Message | None
    failure: Fail | None
    hang: bool
    delay: float
    input_tokens: int
    output_tokens: int


class ScriptedModel:
    """A model that answers from a script, for tests; pass it wherever a model goes, or
    serve it over HTTP with :func:`overstory.testing.serve_openai`.

    Add rules with :meth:`on`. ``calls`` lists every request received, in order.
    Usage is what a rule says, else estimated from the text (four characters a token);
    ``price`` makes calls count toward cost budgets.
    """

    def __init__(self, name: str = "scripted", *, price: Price | None = None) -> None:
        self._name = name
        self._price = price
        self._rules: list[_Rule] = []
        self.calls: list[ChatRequest] = []

    def __repr__(self) -> str:
        return f"<ScriptedModel {self._name!r}: {len(self._rules)} rules, {len(self.calls)} calls>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def price(self) -> Price | None:
        return self._price

    def on(
        self,
        *,
        reply: Reply,
        agent: str | None = None,
        purpose: str | None = None,
        prompt: str | re.Pattern[str] | None = None,
        times: int | None = None,
        usage: tuple[int, int] | None = None,
        delay: float = 0.0,
    ) -> ScriptedModel:
        """Answer matching requests with ``reply``; returns the model, to chain calls.

        ``agent`` is a glob matched against the calling agent's path or its last segment
        (``"billing"``, ``"desk/*"``); ``purpose`` is ``"answer"``, ``"route"``, ``"plan"``
        or ``"aggregate"``; ``prompt`` is a regular expression searched in the request's
        user messages. ``times`` bounds how often the rule answers; ``usage`` is the
        ``(input, output)`` tokens it reports; ``delay`` waits before answering.
        """
        if times is not None and (isinstance(times, bool) or times < 1):
            raise ValueError(f"times must be at least 1, got {times!r}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        self._rules.append(
            _Rule(
                agent=agent,
                purpose=purpose,
                prompt=re.compile(prompt) if isinstance(prompt, str) else prompt,
                reply=reply,
                times=times,
                usage=usage,
                delay=delay,
            )
        )
        return self

    def answer(self, request: ChatRequest) -> Answer:
        """Record ``request`` and resolve the first matching rule's reply.

        Raises :class:`UnscriptedRequest` when no rule matches.
        """
        self.calls.append(request)
        for rule in self._rules:
            if rule.matches(request):
                rule.used += 1
                return self._resolve(rule, request)
        excerpt = request.prompt if len(request.prompt) <= 200 else request.prompt[:200] + "..."
        raise UnscriptedRequest(
            f"{self._name}: no rule matches the {request.purpose!r} request of agent "
            f"{request.agent or '(none)'!r}; prompt: {excerpt!r}"
        )

    def _resolve(self, rule: _Rule, request: ChatRequest) -> Answer:
        reply = rule.reply
        if (
            callable(reply)
            and not isinstance(reply, (type, ToolCall))
            and not attrs.has(type(reply))
        ):
            reply = reply(request)
        message: Message | None = None
        failure: Fail | None = None
        hang = False
        if isinstance(reply, Fail):
            failure = reply
        elif isinstance(reply, Hang):
            hang = True
        elif isinstance(reply, ToolCall):
            message = Message(role="assistant", tool_calls=(reply,))
        elif (
            isinstance(reply, Sequence)
            and not isinstance(reply, str)
            and reply
            and all(isinstance(r, ToolCall) for r in reply)
        ):
            message = Message(role="assistant", tool_calls=tuple(reply))
        elif isinstance(reply, str):
            message = Message.assistant(reply)
        else:
            message = Message.assistant(json.dumps(converter.unstructure(reply)))
        if rule.usage is not None:
            input_tokens, output_tokens = rule.usage
        else:
            input_tokens = estimate_tokens([m.content for m in request.messages])
            output_tokens = (
                estimate_tokens([message.content, *(c.arguments for c in message.tool_calls)])
                if message is not None
                else 0
            )
        return Answer(
            message=message,
            failure=failure,
            hang=hang,
            delay=rule.delay,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` from the script, as the HTTP client would after its retries:
        a scripted 429 or 5xx raises :class:`~overstory.ProviderError`, 401/403
        :class:`~overstory.AuthenticationFailed`, other 4xx
        :class:`~overstory.InvalidRequest`."""
        answer = self.answer(request)
        if answer.delay:
            await trio.sleep(answer.delay)
        if answer.hang:
            await trio.sleep_forever()
        if answer.failure is not None:
            raise _raise_for(answer.failure, request)
        await trio.lowlevel.checkpoint()
        assert answer.message is not None
        if request.on_text is not None and answer.message.content:
            request.on_text(answer.message.content)
        return ChatResponse(
            message=answer.message,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            model=self._name,
            finish_reason="tool_calls" if answer.message.tool_calls else "stop",
        )


def _raise_for(failure: Fail, request: ChatRequest) -> Exception:
    status = failure.status
    if status in (401, 403):
        return AuthenticationFailed(request.agent, status, failure.message)
    if 400 <= status < 500 and status not in (408, 409, 429):
        return InvalidRequest(request.agent, status, failure.message)
    return ProviderError(
        request.agent,
        f"HTTP {status}: {failure.message}",
        status=status,
        retry_after=failure.retry_after,
    )
