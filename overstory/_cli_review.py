"""Reviewing on the terminal: :class:`TerminalReviewer` asks each review point of
``overstory run`` on stderr and reads the answers from stdin.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import trio
import trio.lowlevel

from overstory._cli_render import _pretty
from overstory.hierarchy._review import Approve, Decision, Edit, Reject, ReviewRequest

if TYPE_CHECKING:
    from outcome import Outcome as _Result

__all__ = ["TerminalReviewer"]


class _LineReader:
    """Reads lines from ``stdin`` in a worker thread, one read at a time.

    A read outlives the question that started it: when that question is cancelled (a
    group restart, say), the line typed next answers the next question instead of being
    swallowed by an abandoned thread.
    """

    def __init__(self, stdin: TextIO) -> None:
        self._stdin = stdin
        self._done: trio.Event | None = None
        self._result: _Result[str] | None = None

    async def readline(self) -> str:
        """The next line, with its newline; ``""`` at end of file."""
        if self._done is None:
            done = self._done = trio.Event()
            token = trio.lowlevel.current_trio_token()

            def store(result: _Result[str]) -> None:
                self._result = result
                done.set()

            def deliver(result: _Result[str]) -> None:  # in the worker thread
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(store, result)

            trio.lowlevel.start_thread_soon(self._stdin.readline, deliver)
        await self._done.wait()
        result, self._result, self._done = self._result, None, None
        assert result is not None
        return result.unwrap()


class TerminalReviewer:
    """A reviewer that shows each output on ``out`` and reads the answer from ``stdin``.

    It asks ``[a]pprove / [r]eject / [e]dit``; a rejection asks for one line of feedback,
    an edit for the new output as JSON (several lines until it parses; it asks again
    when it is not JSON). Review points are asked one at a time, in the order they come.
    Lines are read in a worker thread, so cancelling the goal stops a pending question;
    a line typed for a question that was cancelled answers the next one.

    When ``stdin`` reaches end of file the reviewer sets :attr:`closed` and calls
    ``on_eof`` (which must cancel the run), instead of answering.
    """

    def __init__(self, stdin: TextIO, out: TextIO, *, on_eof: Callable[[], None]) -> None:
        self._stdin = stdin
        self._lines = _LineReader(stdin)
        self._out = out
        self._on_eof = on_eof
        self._lock = trio.Lock()
        self.closed = False

    async def __call__(self, request: ReviewRequest) -> Decision:
        async with self._lock:
            self._show(request)
            while True:
                answer = (await self._ask("[a]pprove / [r]eject / [e]dit? ")).strip().lower()
                if answer in ("a", "approve"):
                    return Approve()
                if answer in ("r", "reject"):
                    return Reject(feedback=await self._feedback())
                if answer in ("e", "edit"):
                    return Edit(output=await self._edited())
                self._say("please answer a, r or e")

    def _show(self, request: ReviewRequest) -> None:
        self._say("")
        round_ = f" (round {request.round})" if request.round > 1 else ""
        self._say(f"review: step {request.step} of {request.path}{round_}")
        self._say(f"  agent   {request.agent}")
        self._say("  output")
        for line in _pretty(request.output).splitlines():
            self._say(f"    {line}")

    async def _feedback(self) -> str:
        while True:
            feedback = (await self._ask("feedback for the agent: ")).strip()
            if feedback:
                return feedback
            self._say("feedback cannot be empty")

    async def _edited(self) -> Any:
        while True:
            text = await self._ask("new output as JSON: ")
            while True:
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    # Keep reading while the text is valid so far but unfinished.
                    unfinished = exc.pos >= len(text.rstrip()) and text.strip() != ""
                    if not unfinished:
                        self._say(f"not valid JSON: {exc}; try again")
                        break
                line = await self._ask("... ")
                if not line.strip():
                    self._say("not valid JSON: it ends too early; try again")
                    break
                text += "\n" + line

    def _say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    async def _ask(self, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        line = await self._lines.readline()
        if not line:
            self._say("")
            await self._eof()
        answer = line.rstrip("\r\n")
        if not self._stdin.isatty():
            self._say(answer)  # piped answers are not echoed by a terminal: keep a transcript
        return answer

    async def _eof(self) -> NoReturn:
        self.closed = True
        self._on_eof()
        await trio.sleep_forever()  # on_eof cancelled us
