"""A client for OpenAI-compatible chat-completions endpoints, on httpx.

OpenAI, vLLM, Ollama (``http://localhost:11434/v1``), llama.cpp's server and LiteLLM all
speak ``POST {base_url}/chat/completions``. httpx is the HTTP client because it runs
under trio (through anyio) with trio's cancellation, and pulls in little; the ``openai``
package would add its own retry layer and an HTTP stack tuned for asyncio.

Connections are pooled per ``trio.run``: the first call in a run opens one shared
``httpx.AsyncClient`` and a system task closes it when the run ends, so a model object
can live at module level and serve any number of runs. Pass ``client=`` to use your own.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio
from opentelemetry import trace

from overstory._checks import at_least, finite_non_negative, positive
from overstory.llm._errors import AuthenticationFailed, InvalidRequest, ProviderError
from overstory.llm._model import ChatRequest, ChatResponse, Message, Price
from overstory.llm._openai_answer import (
    AttemptFailed,
    Retryable,
    StreamState,
    error_message,
    read_answer,
)
from overstory.llm._openai_body import ACCEPT_ENCODING, read_body, read_lines
from overstory.supervisors._policies import Backoff

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIModel", "parse_retry_after"]

logger = logging.getLogger("overstory")

DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: Statuses worth retrying: timeouts, conflicts, rate limits, server errors.
_RETRYABLE = frozenset({408, 409, 429})

#: Seconds a streamed body may go on after [DONE]; its end normally follows at once.
_DONE_GRACE = 0.25

#: Bytes of a refusal's body read for its reason (at most 500 characters are shown).
_REFUSAL_BYTES = 65536

_CLIENT: trio.lowlevel.RunVar[httpx.AsyncClient] = trio.lowlevel.RunVar("overstory_http_client")


def _shared_client() -> httpx.AsyncClient:
    try:
        return _CLIENT.get()
    except LookupError:
        pass
    import httpx

    client = httpx.AsyncClient(timeout=None)
    _CLIENT.set(client)
    trio.lowlevel.spawn_system_task(
        _close_when_run_ends, client, name="overstory: close the shared HTTP client"
    )
    return client


async def _close_when_run_ends(client: httpx.AsyncClient) -> None:
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5.0):
            try:
                await client.aclose()
            except Exception:  # pragma: no cover - closing sockets should not fail
                logger.exception("closing the shared HTTP client failed")


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP
    date); ``None`` when absent or unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    header = headers.get("retry-after")
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        value = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, value)
    return value if math.isfinite(value) and value >= 0 else None


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _base_url(value: str | None) -> str:
    return (value or _env("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def _structured(value: str) -> str:
    if value not in ("json_schema", "json_object", "prompt"):
        raise ValueError(
            f"OpenAIModel.structured must be 'json_schema', 'json_object' or 'prompt', "
            f"got {value!r}"
        )
    return value


@attrs.frozen(eq=False)
class OpenAIModel:
    """A model behind an OpenAI-compatible chat-completions endpoint.

    ``base_url`` defaults to ``$OPENAI_BASE_URL``, then OpenAI's; ``api_key`` to
    ``$OPENAI_API_KEY`` (none is sent when there is none, as Ollama expects). Both are read
    when the model is created. ``price`` makes calls count toward cost budgets.

    Each HTTP attempt is bounded by ``timeout`` seconds. 408, 409, 429, 5xx, timeouts,
    connection errors and malformed answers are retried up to ``retries`` times: after
    the ``Retry-After`` the provider asked for (``retry-after-ms`` or ``Retry-After``),
    else after ``backoff``; a ``Retry-After`` longer than ``max_retry_after`` is not waited
    for. Then :class:`~overstory.ProviderError` is raised, which supervisors retry or
    reassign. 401 and 403 raise :class:`~overstory.AuthenticationFailed`, other 4xx
    :class:`~overstory.InvalidRequest`: both fatal. A 3xx raises ``InvalidRequest`` too,
    naming the status and the ``Location``: redirects are not followed, as a model endpoint
    that redirects a POST means ``base_url`` is wrong. Cancellation is never retried.

    An answer's body may hold at most ``max_answer_bytes`` (16 MiB by default), streamed
    or not. They are counted decoded (after gzip or deflate), as they arrive: the decoded
    bytes are what the client keeps, while the compressed ones are decoded chunk by chunk
    and dropped, so a small body that would inflate to gigabytes stops at the bound as
    well. A larger answer raises ``ProviderError`` at once: the same request would most
    likely bring it again.

    When the request streams (``on_text``), text handed to ``on_text`` is never taken
    back: an attempt that fails after some of its text was handed over (a stream cut or
    stalled part-way) is not retried, as the caller has seen partial output that a retry
    would repeat; ``ProviderError`` is raised at once and says so. Failures before any
    text arrived are retried as above.

    ``structured`` says how a JSON answer is asked for: ``"json_schema"`` (OpenAI, vLLM,
    Ollama, llama.cpp), ``"json_object"``, or ``"prompt"`` (the schema only in the
    system prompt). ``options`` are extra body fields (``{"seed": 1}``). Requests carry
    ``X-Overstory-Agent`` and ``X-Overstory-Purpose`` headers naming the caller.
    """

    name: str
    base_url: str = attrs.field(default=None, converter=_base_url, kw_only=True)
    api_key: str | None = attrs.field(
        factory=lambda: _env("OPENAI_API_KEY"), kw_only=True, repr=False
    )
    price: Price | None = attrs.field(default=None, kw_only=True)
    timeout: float = attrs.field(default=60.0, kw_only=True, validator=positive())
    retries: int = attrs.field(default=3, kw_only=True, validator=at_least(0))
    backoff: Backoff = attrs.field(
        factory=lambda: Backoff(initial=0.5, cap=8.0, jitter=0.2),
        kw_only=True,
        validator=attrs.validators.instance_of(Backoff),
    )
    max_retry_after: float = attrs.field(
        default=60.0, kw_only=True, validator=finite_non_negative()
    )
    max_answer_bytes: int = attrs.field(
        default=16 * 1024 * 1024, kw_only=True, validator=at_least(1, whole=True)
    )
    structured: Literal["json_schema", "json_object", "prompt"] = attrs.field(
        default="json_schema", kw_only=True, converter=_structured
    )
    headers: Mapping[str, str] = attrs.field(factory=dict, kw_only=True, repr=False)
    options: Mapping[str, Any] = attrs.field(factory=dict, kw_only=True)
    client: httpx.AsyncClient | None = attrs.field(default=None, kw_only=True, eq=False, repr=False)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send ``request``, retrying what is worth retrying; see the class docstring."""
        body = self.body(request)
        headers = {
            "Accept": "text/event-stream" if request.on_text else "application/json",
            # Only what _openai_body can decode within max_answer_bytes (httpx's default
            # adds zstd and br when installed); streams are not compressed at all, as
            # compression only delays events.
            "Accept-Encoding": "identity" if request.on_text else ACCEPT_ENCODING,
            "X-Overstory-Agent": request.agent,
            "X-Overstory-Purpose": request.purpose,
            **self.headers,
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        client = self.client if self.client is not None else _shared_client()
        shown = _Shown(request.on_text) if request.on_text is not None else None
        if shown is not None:
            request = attrs.evolve(request, on_text=shown)
        attempts = self.retries + 1
        for attempt in range(attempts):
            problem: AttemptFailed
            try:
                with trio.fail_after(self.timeout):
                    return await self._send(client, body, headers, request)
            except trio.TooSlowError:
                problem = Retryable(f"no answer within {self.timeout:g} s")
            except AttemptFailed as exc:
                # Kept for its reason only: its traceback would hold this frame, which
                # holds it, a cycle that lives until a full collection.
                problem = exc.with_traceback(None)
            if shown is not None and shown.delivered and isinstance(problem, Retryable):
                problem = AttemptFailed(
                    f"{problem.message}; not retried, as on_text received part of the "
                    "answer already",
                    problem.status,
                    problem.retry_after,
                )
            if attempt + 1 == attempts or not isinstance(problem, Retryable):
                break
            if problem.retry_after is not None and problem.retry_after > self.max_retry_after:
                logger.warning(
                    "%s: %s asks to retry after %g s, more than max_retry_after; giving up",
                    request.agent,
                    self.name,
                    problem.retry_after,
                )
                break
            delay = (
                problem.retry_after
                if problem.retry_after is not None
                else self.backoff.delay(attempt, random.random())
            )
            event: dict[str, Any] = {
                "overstory.attempt": attempt + 1,
                "overstory.backoff": delay,
                "overstory.message": problem.message,
            }
            if problem.status is not None:
                event["http.response.status_code"] = problem.status
            trace.get_current_span().add_event("overstory.provider_retry", event)
            logger.info(
                "%s: %s failed (%s); retrying in %.3g s",
                request.agent,
                self.name,
                problem.message,
                delay,
            )
            await trio.sleep(delay)
        raise ProviderError(
            request.agent,
            f"{self.name} failed after {attempt + 1} attempt(s): {problem.message}",
            status=problem.status,
            retry_after=problem.retry_after,
        )

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [_encode_message(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in request.tools
            ]
        if request.schema is not None:
            if self.structured == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": request.schema_name, "schema": dict(request.schema)},
                }
            elif self.structured == "json_object":
                body["response_format"] = {"type": "json_object"}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.on_text is not None:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(self.options)
        return body

    async def _send(
        self,
        client: httpx.AsyncClient,
        body: dict[str, Any],
        headers: dict[str, str],
        request: ChatRequest,
    ) -> ChatResponse:
        import httpx

        try:
            async with client.stream("POST", self.url, json=body, headers=headers) as response:
                if response.status_code >= 300:
                    content = await _refusal_body(
                        response, min(self.max_answer_bytes, _REFUSAL_BYTES)
                    )
                    raise self._refusal(response, content, request)
                if request.on_text is not None and response.headers.get(
                    "content-type", ""
                ).startswith("text/event-stream"):
                    return await self._read_stream(response, request)
                answer = read_answer(
                    await read_body(response, self.max_answer_bytes), request, self.name
                )
                if request.on_text is not None and answer.message.content:
                    # The server did not stream: hand over the whole text at once.
                    request.on_text(answer.message.content)
                return answer
        except httpx.TransportError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        except httpx.DecodingError as exc:
            # A body that does not decode as its Content-Encoding says (corrupt gzip).
            raise Retryable(f"malformed answer ({type(exc).__name__}: {exc})", 200) from None

    def _refusal(self, response: httpx.Response, content: bytes, request: ChatRequest) -> Exception:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location")
            where = f"to {location!r}" if location else "(no Location header)"
            return InvalidRequest(
                request.agent,
                status,
                f"{self.url} redirects {where}; redirects are not followed: a model "
                "endpoint that redirects a POST means base_url is misconfigured",
            )
        message = error_message(content) or response.reason_phrase
        if status in (401, 403):
            return AuthenticationFailed(request.agent, status, message)
        if status in _RETRYABLE or status >= 500:
            return Retryable(
                f"HTTP {status}: {message}", status, parse_retry_after(response.headers)
            )
        return InvalidRequest(request.agent, status, message)

    async def _read_stream(self, response: httpx.Response, request: ChatRequest) -> ChatResponse:
        # After [DONE] the answer is complete: the body gets _DONE_GRACE to end (then the
        # connection is reused), else it is cut, for servers that never end it.
        assert request.on_text is not None
        on_text = request.on_text
        state = StreamState(model=self.name)
        await read_lines(
            response, self.max_answer_bytes, lambda line: state.feed(line, on_text), _DONE_GRACE
        )
        return state.response(request)


@attrs.define
class _Shown:
    """Hands text on to a request's ``on_text``, and remembers whether it did."""

    on_text: Callable[[str], None]
    delivered: bool = False

    def __call__(self, piece: str) -> None:
        self.delivered = True
        self.on_text(piece)


async def _refusal_body(response: httpx.Response, limit: int) -> bytes:
    import httpx

    try:
        return await read_body(response, limit, cut=True)
    except httpx.DecodingError:
        # The status says enough; a body that does not decode only loses the details.
        return b""


def _encode_message(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return data
