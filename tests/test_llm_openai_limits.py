"""ov.OpenAIModel over real loopback HTTP: what it does not retry (answers past
max_answer_bytes, streams that already handed text to on_text, redirects), and how it
reads bodies as they arrive."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import attrs
import pytest
import trio
from llm_support import chat_request, completion, events, http_answer, raw_server, unended_head

import overstory as ov
from overstory.llm._openai_body import _Lines

_PIECE = {"choices": [{"delta": {"content": "Hello "}}]}
_STOP = {"choices": [{"delta": {}, "finish_reason": "stop"}]}

#: A bound small enough to pass quickly, far below the 1 MiB the flooding server sends.
_BOUND = 65536
_FLOODS = 64
_TEXT_EVENTS = f"data: {json.dumps(_PIECE)}\n\n".encode() * 300


@pytest.mark.parametrize(
    ("answer", "flood", "streamed"),
    [
        (unended_head() + b'{"choices": [{"message": {"content": "', b"x" * 16384, False),
        (unended_head(content_type="text/event-stream"), _TEXT_EVENTS, True),
        (unended_head(content_type="text/event-stream") + b"data: ", b"x" * 16384, True),
    ],
    ids=["json", "events", "one endless line"],
)
async def test_a_body_that_never_ends_fails_at_the_bound(
    nursery: trio.Nursery, answer: bytes, flood: bytes, streamed: bool
) -> None:
    """A body that never ends fails once past max_answer_bytes, naming it, without retries."""
    server, model = await raw_server(nursery, answer, flood=flood, floods=_FLOODS, timeout=0.5)
    model = attrs.evolve(model, max_answer_bytes=_BOUND)
    pieces: list[str] = []
    request = chat_request(on_text=pieces.append if streamed else None)
    with pytest.raises(ov.ProviderError, match=rf"larger than max_answer_bytes \({_BOUND} bytes"):
        await model.complete(request)
    assert len(server.bodies) == 1
    assert len("".join(pieces)) <= _BOUND


def _encoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "raw deflate":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return packer.compress(body) + packer.flush()
    return body


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate", "raw deflate"])
async def test_the_bound_counts_decoded_bytes(nursery: trio.Nursery, encoding: str) -> None:
    """max_answer_bytes counts decoded bytes: exactly that many pass, one more fails, unretried."""
    body = json.dumps(completion("x" * 200_000)).encode()
    content = _encoded(body, encoding)
    header = "deflate" if encoding == "raw deflate" else encoding
    answer = http_answer(content, headers={"content-encoding": header})
    server, model = await raw_server(nursery, answer)
    if encoding != "identity":
        assert len(content) < len(body) // 100
    response = await attrs.evolve(model, max_answer_bytes=len(body)).complete(chat_request())
    assert response.message.content == "x" * 200_000
    with pytest.raises(ov.ProviderError, match="max_answer_bytes") as caught:
        await attrs.evolve(model, max_answer_bytes=len(body) - 1).complete(chat_request())
    assert caught.value.status == 200
    assert len(server.bodies) == 2


async def test_a_refusal_whose_body_never_ends_reports_its_status(nursery: trio.Nursery) -> None:
    """A 503 whose body never ends is retried, then reported by its status, before any timeout."""
    answer = unended_head(status=503) + b'{"error": {"message": "'
    server, model = await raw_server(nursery, answer, flood=b"x" * 16384, floods=16, timeout=0.5)
    with pytest.raises(ov.ProviderError, match="HTTP 503") as caught:
        await model.complete(chat_request())
    assert caught.value.status == 503
    assert len(server.bodies) == 3


def _stalled(*chunks: dict[str, Any]) -> bytes:
    """A stream that sends ``chunks`` and then nothing, its body unfinished."""
    body = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks)
    return http_answer(
        body, headers={"content-type": "text/event-stream", "content-length": "100000"}
    )


@pytest.mark.parametrize(
    ("answer", "hold", "reason"),
    [
        (events(_PIECE), False, r"ended before \[DONE\]"),
        (_stalled(_PIECE), True, r"no answer within 0\.3 s"),
    ],
    ids=["cut", "stalled"],
)
async def test_a_stream_that_fails_after_text_is_not_retried(
    nursery: trio.Nursery, answer: bytes, hold: bool, reason: str
) -> None:
    """A stream failing after on_text got text is not retried, so no text reaches it twice."""
    server, model = await raw_server(nursery, answer, events(_PIECE, _STOP), hold=hold, timeout=0.3)
    pieces: list[str] = []
    with pytest.raises(ov.ProviderError, match=reason) as caught:
        await ov.ask(model, "hello", on_text=pieces.append)
    assert "on_text received part of the answer" in str(caught.value)
    assert pieces == ["Hello "]
    assert len(server.bodies) == 1


async def test_a_stream_that_fails_before_any_text_is_retried(nursery: trio.Nursery) -> None:
    """A stream failing before any text is retried, and on_text gets the answer once."""
    refusal = http_answer({"error": {"message": "overloaded"}}, status=503)
    cut = events({"choices": [{"delta": {"role": "assistant"}}]})
    server, model = await raw_server(nursery, refusal, cut, events(_PIECE, _STOP))
    pieces: list[str] = []
    assert await ov.ask(model, "hello", on_text=pieces.append) == "Hello "
    assert pieces == ["Hello "]
    assert len(server.bodies) == 3


async def test_a_malformed_event_before_any_text_is_retried(nursery: trio.Nursery) -> None:
    """An event line that is not a JSON chunk is a malformed stream, retried while no
    text has reached on_text; on_text gets the retry's text once."""
    server, model = await raw_server(nursery, events("{not json"), events(_PIECE, _STOP))
    pieces: list[str] = []
    assert await ov.ask(model, "hello", on_text=pieces.append) == "Hello "
    assert pieces == ["Hello "]
    assert len(server.bodies) == 2


async def test_a_malformed_event_after_text_is_not_retried(nursery: trio.Nursery) -> None:
    """A malformed event after text reached on_text fails the call as a malformed stream,
    without a retry."""
    server, model = await raw_server(nursery, events(_PIECE, "[1, 2"), events(_PIECE, _STOP))
    with pytest.raises(ov.ProviderError, match=r"malformed stream \(JSONDecodeError: "):
        await ov.ask(model, "hello", on_text=lambda piece: None)
    assert len(server.bodies) == 1


async def test_an_on_text_that_raises_fails_the_call_with_its_own_error(
    nursery: trio.Nursery,
) -> None:
    """An exception raised by the caller's on_text ends the call as itself (not as a
    malformed stream), with no retry."""
    server, model = await raw_server(nursery, events(_PIECE, _STOP), events(_PIECE, _STOP))

    def refuse(piece: str) -> None:
        raise KeyError(f"no room for {piece!r}")

    with pytest.raises(KeyError, match="no room for 'Hello '"):
        await ov.ask(model, "hello", on_text=refuse)
    assert len(server.bodies) == 1


@pytest.mark.parametrize(
    ("status", "location"),
    [
        (301, "https://api.example/v1/chat/completions"),
        (302, "/login"),
        (307, "https://api.example/v1/chat/completions"),
        (308, "https://api.example/v1/chat/completions"),
        (307, None),
    ],
)
async def test_a_redirect_fails_at_once(
    nursery: trio.Nursery, status: int, location: str | None
) -> None:
    """A 3xx is not followed or retried: a Fatal InvalidRequest naming status and Location."""
    headers = {"location": location} if location is not None else {}
    server, model = await raw_server(nursery, http_answer(b"", status=status, headers=headers))
    with pytest.raises(ov.InvalidRequest) as caught:
        await model.complete(chat_request())
    assert isinstance(caught.value, ov.Fatal)
    assert caught.value.status == status
    message = str(caught.value)
    assert message.startswith(f"desk/a: HTTP {status}: {model.url} redirects ")
    assert (repr(location) if location is not None else "no Location header") in message
    assert "base_url is misconfigured" in message
    assert len(server.bodies) == 1


def test_event_lines_split_anywhere_read_the_same() -> None:
    """Event lines end at CRLF, LF or a lone CR (not U+2028), wherever the chunks split."""
    data = "data: a\r\n\r\ndata: é\u2028x\rdata: b\n\ndata: c".encode()
    want = ["data: a", "", "data: é\u2028x", "data: b", "", "data: c"]
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            lines = _Lines()
            got = lines.feed(data[:i]) + lines.feed(data[i:j]) + lines.feed(data[j:], final=True)
            assert got == want, (i, j)
