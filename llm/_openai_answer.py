"""Reading what an OpenAI-compatible endpoint answered: a chat completion, or a stream of
server-sent events, into a :class:`ChatResponse`.

Providers and the servers that imitate them bend the format (content parts, arguments as
objects, error objects with a 200, counts that are no counts). What can be read is read;
the rest is a malformed answer, which the client retries like a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from overstory._text import scrub
from overstory.llm._model import ChatRequest, ChatResponse, Message, ToolCall, estimate_tokens

#: What reading an answer of the wrong shape raises (OverflowError: ``int(Infinity)``).
MALFORMED = (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError)


class AttemptFailed(Exception):
    """An attempt that failed; ``message`` says how. Only a :class:`Retryable` one is
    retried."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class Retryable(AttemptFailed):
    """An attempt that failed in a way worth retrying; ``message`` says how."""


def read_answer(content: bytes, request: ChatRequest, model: str) -> ChatResponse:
    """The chat completion in ``content``; :class:`Retryable` when it is not one."""
    try:
        data = json.loads(content)
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            # Some proxies report a failure with a 200: their message says more than
            # the missing choices would.
            raise Retryable(f"error in answer: {error_object_text(data['error'])}", 200)
        choice = data["choices"][0]
        raw = choice["message"]
        calls = tuple(_tool_call(i, call) for i, call in enumerate(raw.get("tool_calls") or ()))
        message = Message(role="assistant", content=_content(raw.get("content")), tool_calls=calls)
        return response_from(
            request,
            message,
            data.get("usage"),
            scrub(str(data.get("model") or model)),
            choice.get("finish_reason"),
        )
    except MALFORMED as exc:
        raise Retryable(f"malformed answer ({type(exc).__name__}: {exc})", 200) from None


def _content(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return scrub(value)
    if not isinstance(value, list):
        raise TypeError(f"content of type {type(value).__name__}, not text")
    # Content parts, as requests may send them: the answer is in the text parts.
    texts = [part.get("text") for part in value if part.get("type") == "text"]
    if not all(isinstance(text, str) for text in texts):
        raise TypeError("a text content part has no text")
    return scrub("".join(texts)) if texts else None


def _tool_call(index: int, call: Any) -> ToolCall:
    function = call["function"]
    name = function["name"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool call {index} has no name")
    return ToolCall(
        id=scrub(str(call.get("id") or f"call_{index}")),
        name=scrub(name),
        arguments=_arguments(function.get("arguments")) or "{}",
    )


def _arguments(value: Any) -> str:
    if value is None or isinstance(value, str):
        return scrub(value or "")
    # The API sends a JSON string; some servers send the object itself.
    return scrub(json.dumps(value, ensure_ascii=False))


@attrs.define
class StreamState:
    """What the server-sent events of one streamed answer said so far."""

    model: str
    text: list[str] = attrs.Factory(list)
    calls: dict[int, dict[str, str]] = attrs.Factory(dict)
    usage: Any = None
    finish: str | None = None
    done: bool = False

    def feed(self, line: str, on_text: Callable[[str], None]) -> bool:
        """Take in one line of the stream, then hand its text to ``on_text``; True when it
        is the ``[DONE]`` that ends it. :class:`Retryable` when the line is malformed;
        what ``on_text`` raises passes through as it is."""
        try:
            pieces = self._parse(line)
        except MALFORMED as exc:
            raise Retryable(f"malformed stream ({type(exc).__name__}: {exc})", 200) from None
        for piece in pieces:
            on_text(piece)
        return self.done

    def _parse(self, line: str) -> list[str]:
        if not line.startswith("data:"):
            return []
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return []
        pieces: list[str] = []
        chunk = json.loads(payload)
        if "error" in chunk:
            raise Retryable(f"error in stream: {error_object_text(chunk['error'])}", 200)
        self.model = scrub(str(chunk.get("model") or self.model))
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            piece = _content(delta.get("content"))
            if piece:
                self.text.append(piece)
                pieces.append(piece)
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(
                    int(call.get("index", len(self.calls))), {"id": "", "name": "", "args": ""}
                )
                function = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += function.get("name") or ""
                slot["args"] += _arguments(function.get("arguments"))
            self.finish = choice.get("finish_reason") or self.finish
        return pieces

    def response(self, request: ChatRequest) -> ChatResponse:
        """The answer the stream made up; :class:`Retryable` when it was cut short."""
        if not self.done and self.finish is None:
            # Neither [DONE] nor a finish_reason: the stream was cut, the answer may be too.
            raise Retryable("malformed stream (it ended before [DONE] or a finish_reason)", 200)
        calls = tuple(
            ToolCall(
                id=scrub(str(slot["id"] or f"call_{index}")),
                name=scrub(slot["name"]),
                arguments=scrub(slot["args"]) or "{}",
            )
            for index, slot in sorted(self.calls.items())
        )
        if any(not call.name for call in calls):
            raise Retryable("malformed stream (a tool call has no name)", 200)
        message = Message(
            role="assistant",
            content="".join(self.text) if self.text or not calls else None,
            tool_calls=calls,
        )
        return response_from(request, message, self.usage, self.model, self.finish)


def response_from(
    request: ChatRequest, message: Message, usage: Any, model: str, finish: Any
) -> ChatResponse:
    """The response carrying ``message``, with the provider's token counts when it gave
    some, else estimated ones."""
    counts = usage if isinstance(usage, dict) else {}
    input_tokens = _count(counts.get("prompt_tokens"))
    if input_tokens is not None:
        output_tokens = _count(counts.get("completion_tokens")) or 0
        estimated = False
    else:
        input_tokens = estimate_tokens([m.content for m in request.messages])
        output_tokens = estimate_tokens(
            [message.content, *(c.arguments for c in message.tool_calls)]
        )
        estimated = True
    return ChatResponse(
        message=message,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=model,
        finish_reason=finish if isinstance(finish, str) else None,
        estimated=estimated,
    )


def _count(value: Any) -> int | None:
    """A token count, or None for what is none: a negative count would refund budgets,
    and true, 3.7, "x" and Infinity are no counts."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def error_object_text(error: Any) -> str:
    """The message of an error object a provider sent."""
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def error_message(content: bytes) -> str:
    """The reason a refusal's body gives, at most 500 characters of it."""
    try:
        data = json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace").strip()[:500]
    if isinstance(data, dict) and "error" in data:
        return error_object_text(data["error"])[:500]
    return str(data)[:500]
