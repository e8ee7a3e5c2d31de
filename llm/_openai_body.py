"""Reading an answer's body as it arrives, within a bound on its size.

The body is decoded here (gzip, deflate) rather than by httpx, chunk by chunk as it
arrives, so that the bound counts decoded bytes, which are what is held in memory: the
compressed bytes are not kept, and a small body that would inflate to gigabytes stops
once its output passes the bound (zlib is never asked for more than one byte past it).
A body that never ends stops there too, whether or not it has line breaks.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import trio

from overstory.llm._openai_answer import AttemptFailed

if TYPE_CHECKING:
    import httpx

__all__ = ["ACCEPT_ENCODING", "TooLarge", "read_body", "read_lines"]

#: The Content-Encodings asked for: those that can be decoded within a bound below.
ACCEPT_ENCODING = "gzip, deflate"

#: Ends a line of server-sent events. Splitting bytes rather than text keeps U+2028 and
#: the other separators str.splitlines knows, which JSON strings may hold, inside lines.
_BREAK = re.compile(rb"\r\n|\r|\n")


class TooLarge(AttemptFailed):
    """The body passed the bound: not retried, as the same request would most likely
    bring the same answer."""


class _Decoder:
    """Decodes a body's Content-Encoding piece by piece, and raises :class:`TooLarge` once
    more than ``limit`` decoded bytes came out."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        import httpx

        # A body httpx read whole already (httpx.MockTransport's) is decoded already.
        encoding = (
            "" if response.is_stream_consumed else response.headers.get("content-encoding", "")
        )
        codings = [c for c in (c.strip().lower() for c in encoding.split(",")) if c]
        codings = [c for c in codings if c != "identity"]
        self._wbits: int | None
        if not codings:
            self._wbits = None
        elif codings in (["gzip"], ["x-gzip"]):
            self._wbits = zlib.MAX_WBITS | 16
        elif codings == ["deflate"]:
            self._wbits = zlib.MAX_WBITS
        else:
            raise httpx.DecodingError(f"unsupported Content-Encoding {encoding!r}")
        self._inflate = zlib.decompressobj(self._wbits) if self._wbits is not None else None
        self._first = True
        self._status = response.status_code
        self._limit = limit
        self._size = 0

    def feed(self, data: bytes) -> bytes:
        return self._count(data if self._inflate is None else self._decompress(data))

    def flush(self) -> bytes:
        # What zlib still holds once every input byte went in (none is left over: see
        # _decompress), counted like the rest.
        return b"" if self._inflate is None else self._count(self._inflate.flush())

    def _count(self, out: bytes) -> bytes:
        self._size += len(out)
        if self._size > self._limit:
            raise TooLarge(
                f"the answer is larger than max_answer_bytes ({self._limit} bytes, "
                "counted decoded); not retried",
                self._status,
            )
        return out

    def _decompress(self, data: bytes) -> bytes:
        import httpx

        assert self._inflate is not None
        # At most one byte past the room left: enough to know the bound is passed. When
        # less comes out, zlib took every byte of ``data`` in.
        room = self._limit - self._size + 1
        first, self._first = self._first, False
        try:
            return self._inflate.decompress(data, room)
        except zlib.error as exc:
            if first and self._wbits == zlib.MAX_WBITS:
                # Some servers send "deflate" as a raw deflate stream, without zlib's
                # header (httpx reads both).
                self._wbits = -zlib.MAX_WBITS
                self._inflate = zlib.decompressobj(self._wbits)
                return self._decompress(data)
            raise httpx.DecodingError(str(exc)) from None


class _Lines:
    """Splits bytes into lines ended by CRLF, LF or CR (as server-sent events are), as
    text."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # the part of the buffer known to hold no line break

    def feed(self, data: bytes, *, final: bool = False) -> list[str]:
        buffer = self._buffer
        buffer += data
        lines: list[str] = []
        start = 0
        for match in _BREAK.finditer(buffer, self._scanned):
            if not final and match.end() == len(buffer) and match.group() == b"\r":
                break  # perhaps the first half of a CRLF split across chunks
            lines.append(buffer[start : match.start()].decode("utf-8", "replace"))
            start = match.end()
        if final and start < len(buffer):
            lines.append(buffer[start:].decode("utf-8", "replace"))
            start = len(buffer)
        del buffer[:start]
        self._scanned = len(buffer) - buffer.endswith(b"\r")
        return lines


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    if response.is_stream_consumed:  # read whole already, as httpx.MockTransport's are
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk


async def _read(
    response: httpx.Response, limit: int, take: Callable[[bytes, bool], bool], grace: float
) -> None:
    # httpx streams through a chain of async generators. Leaving the loop early (break,
    # or an exception in its body) would abandon them half-way, which trio reports as a
    # ResourceWarning. So the body never raises: a problem cancels ``stop``, and the
    # cancellation then ends every generator of the chain from the inside. Once ``take``
    # says the answer is complete, the body gets ``grace`` seconds to end (then the
    # connection is reused), else it is cut, for servers that never end it.
    decoder = _Decoder(response, limit)
    problem: Exception | None = None
    finished = False
    with trio.CancelScope() as stop:
        async for chunk in _raw_chunks(response):
            if problem is not None or finished:
                continue
            try:
                finished = take(decoder.feed(chunk), False)
            except Exception as exc:
                problem = exc
                stop.cancel()
                continue
            if finished:
                stop.deadline = trio.current_time() + grace
    if problem is not None:
        raise problem
    if not finished:
        take(decoder.flush(), True)


async def read_body(response: httpx.Response, limit: int, *, cut: bool = False) -> bytes:
    """The body of ``response``, decoded. :class:`TooLarge` once it passes ``limit`` bytes
    (with ``cut``, the part before the one that did instead); ``httpx.DecodingError`` when
    it does not decode as its Content-Encoding says."""
    parts: list[bytes] = []

    def take(data: bytes, final: bool) -> bool:
        parts.append(data)
        return False

    try:
        await _read(response, limit, take, grace=0.0)
    except TooLarge:
        if not cut:
            raise
    return b"".join(parts)


async def read_lines(
    response: httpx.Response, limit: int, take: Callable[[str], bool], grace: float
) -> None:
    """Pass each line of the body of ``response`` to ``take`` as it arrives, until ``take``
    returns True: the body then gets ``grace`` seconds to end before it is cut. Raises
    what ``take`` raised, :class:`TooLarge` once the body passes ``limit`` bytes, and
    ``httpx.DecodingError``."""
    lines = _Lines()

    def take_bytes(data: bytes, final: bool) -> bool:
        return any(take(line) for line in lines.feed(data, final=final))

    await _read(response, limit, take_bytes, grace)
