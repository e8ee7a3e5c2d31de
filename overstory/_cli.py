"""The ``overstory`` command line: run a goal through a tree, or check a tree.

::

    overstory run TARGET GOAL [--input JSON|@FILE] [--timeout S] [--seed N]
                              [--auto-approve] [--json] [--verbose]
                              [--trace] [--otlp-endpoint URL [--otlp-protocol P]
                              | --trace-file FILE] [--service-name NAME]
    overstory check TARGET
    overstory trace FILE [--trace-id ID] [--no-events] [--width N]
    overstory serve TARGET [--host H] [--port P] [--state-dir DIR] [--max-concurrent N] ...
    overstory submit|status|list|cancel|reviews|approve|reject|tree|events|trace ID ...

TARGET is ``path/to/file.py:NAME`` or ``package.module:NAME`` naming an ``ov.Tree``. The
daemon's commands are documented in ``overstory.daemon._cli`` and ``docs/daemon.md``.

Exit status: 0 the goal succeeded (``check``: the tree is valid); 1 the goal failed, was
cancelled, timed out or ran out of budget, or the tree could not start; 2 a usage error
(bad arguments, a TARGET that cannot be loaded, an invalid tree, stdin closed while a
review point waited for an answer); 130 interrupted (Ctrl-C). ``trace``: 0 drawn; 1 no
span (or no such trace) in FILE; 2 FILE unreadable or not a span file.

Each subcommand is registered by one ``_add_*`` function that adds its parser and sets
``handler``, a function ``(args) -> exit status``; :data:`COMMANDS` lists them in order.
A handler reports an expected problem by raising :class:`CommandError`; :func:`main`
prints it as one paragraph, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import itertools
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import trio
import trio.lowlevel

from overstory._errors import ConfigurationError, DefinitionError, StartError
from overstory.hierarchy._outcome import FailureRecord, Outcome, Status, StepRecord
from overstory.hierarchy._review import Approve, Decision, Edit, Reject, Reviewer, ReviewRequest
from overstory.hierarchy._review import auto_approve as _auto_approve
from overstory.hierarchy._serde import converter
from overstory.hierarchy._tree import Tree
from overstory.telemetry._config import Telemetry, configure
from overstory.telemetry._records import load_spans
from overstory.telemetry._waterfall import render_waterfall

if TYPE_CHECKING:
    from outcome import Outcome as _Result

__all__ = [
    "COMMANDS",
    "CommandError",
    "TerminalReviewer",
    "build_parser",
    "load_tree",
    "main",
    "render_outcome",
]

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: How much of a goal's output the readable outcome shows.
OUTPUT_LINES = 40
OUTPUT_WIDTH = 160


class CommandError(Exception):
    """An expected problem a command reports as one paragraph, then exits ``status``."""

    def __init__(self, message: str, *, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- loading a TARGET -------------------------------------------------------------------

_module_numbers = itertools.count(1)


def load_tree(target: str) -> Tree:
    """Import TARGET (``path/to/file.py:NAME`` or ``package.module:NAME``) and return the
    ``ov.Tree`` it names.

    A file is imported as a fresh module with a unique name (``__name__`` is not
    ``"__main__"``), with its directory first on ``sys.path`` while it is imported, so it
    can import modules next to it. A module is imported with the current directory on
    ``sys.path``, as ``python -m`` does. Raises :class:`CommandError` with one paragraph
    for a missing file or module, an error raised on import, an invalid tree definition,
    a missing attribute or one that is not a tree.
    """
    source, colon, name = target.rpartition(":")
    if not colon or not source or not name:
        base = source if colon else target
        example = f"{base}:tree" if base else "examples/agency.py:tree"
        raise CommandError(
            f"TARGET {target!r} must be path/to/file.py:NAME or package.module:NAME, "
            f"naming an ov.Tree (for example {example})"
        )
    if source.endswith(".py") or "/" in source or os.sep in source:
        module = _import_file(target, Path(source))
        where = source
    else:
        module = _import_module(target, source)
        where = f"module {source}"
    value = getattr(module, name, _MISSING)
    if isinstance(value, Tree):
        return value
    trees = sorted(key for key, item in vars(module).items() if isinstance(item, Tree))
    known = f"the trees it defines: {', '.join(trees)}" if trees else "it defines no ov.Tree at all"
    if value is _MISSING:
        raise CommandError(f"cannot load {target!r}: {where} has no attribute {name!r}; {known}")
    raise CommandError(
        f"cannot load {target!r}: {name} is {_a(type(value).__name__)}, not an ov.Tree; {known}"
    )


_MISSING = object()


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _import_file(target: str, path: Path) -> ModuleType:
    if not path.exists():
        hint = ""
        if path.suffix != ".py" and path.with_name(path.name + ".py").is_file():
            hint = f" (did you mean {path}.py:{target.rpartition(':')[2]}?)"
        raise CommandError(f"cannot load {target!r}: file {path} not found{hint}")
    if path.is_dir():
        raise CommandError(f"cannot load {target!r}: {path} is a directory, not a Python file")
    unique = f"overstory_target_{next(_module_numbers)}_{_identifier(path.stem)}"
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise CommandError(f"cannot load {target!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    directory = str(path.resolve().parent)
    sys.modules[unique] = module
    with _on_sys_path(directory):
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[unique]
            raise CommandError(_import_failure(target, exc, unique)) from exc
    return module


def _import_module(target: str, name: str) -> ModuleType:
    with _on_sys_path(os.getcwd()):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise CommandError(
                    f"cannot load {target!r}: no module named {exc.name!r} (is it installed, "
                    "or in the current directory?)"
                ) from exc
            raise CommandError(_import_failure(target, exc, name)) from exc
        except Exception as exc:
            raise CommandError(_import_failure(target, exc, name)) from exc


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` for the block, unless it is there already."""
    if directory in sys.path:
        yield
        return
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # the module may have removed it itself
            sys.path.remove(directory)


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _import_failure(target: str, exc: Exception, module: str) -> str:
    prefix = f"cannot load {target!r}: "
    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename).name}, line {exc.lineno})" if exc.filename else ""
        return f"{prefix}{type(exc).__name__}: {exc.msg}{where}"
    if isinstance(exc, DefinitionError):
        return f"{prefix}the tree definition is invalid: {exc}{_location(exc, module)}"
    return f"{prefix}importing it raised {type(exc).__name__}: {exc}{_location(exc, module)}"


def _location(exc: BaseException, module: str) -> str:
    """`` (file.py, line N)``: the innermost line of ``module`` (or one of its parent
    packages) that the error passed through, or ``""``."""
    line = ""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__")
        if isinstance(name, str) and (module == name or module.startswith(name + ".")):
            line = f" ({Path(tb.tb_frame.f_code.co_filename).name}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return line


# -- the readable outcome ---------------------------------------------------------------


def render_outcome(outcome: Outcome, *, verbose: bool = False) -> str:
    """The outcome as plain text: a header, the steps as a tree of supervisors, the
    failure chain and the output (its first :data:`OUTPUT_LINES` lines).

    Tracebacks of failures are shown only when ``verbose``.
    """
    return "\n".join(_render(outcome, verbose))


def _render(outcome: Outcome, verbose: bool) -> Iterator[str]:
    yield f"{outcome.tree}: {outcome.status.name} in {_seconds(outcome.duration)}"
    yield f"  goal  {outcome.goal}"
    yield f"  id    {outcome.goal_id}"
    total = outcome.usage.total
    if total.tokens or total.cost:
        yield (
            f"  usage {total.tokens:,} tokens ({total.input_tokens:,} in, "
            f"{total.output_tokens:,} out), cost {total.cost:g}, {total.attempts} leaf attempts"
        )
    if outcome.steps:
        yield ""
        yield "steps"
        yield from _render_steps(outcome.steps, outcome.failures)
    if outcome.failures:
        yield ""
        count = len(outcome.failures)
        yield f"failures ({count}{', recovered' if outcome.ok else ''})"
        for number, failure in enumerate(outcome.failures, 1):
            yield from _render_failure(number, failure, verbose)
    if outcome.ok:
        yield ""
        yield "output"
        yield from _render_output(outcome.output)


def _render_steps(
    records: Sequence[StepRecord], failures: Sequence[FailureRecord]
) -> Iterator[str]:
    groups: dict[str, list[StepRecord]] = {}
    for record in records:
        groups.setdefault(record.supervisor, []).append(record)

    def parent(path: str) -> str | None:
        head = path
        while "/" in head:
            head = head.rsplit("/", 1)[0]
            if head in groups:
                return head
        return None

    children: dict[str | None, list[str]] = {}
    for path in groups:
        children.setdefault(parent(path), []).append(path)

    def first_start(path: str) -> float:
        return min(record.started for record in groups[path])

    def entries(path: str, prefix: str) -> Iterator[str]:
        # Steps in the order they started; the items of a fan-out together, in item order.
        first: dict[str, float] = {}
        for record in groups[path]:
            first[record.step] = min(first.get(record.step, record.started), record.started)
        steps = sorted(groups[path], key=lambda r: (first[r.step], r.step, r.item or 0, r.started))
        rows = [_step_row(record, failures) for record in steps]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        teams = sorted(children.get(path, []), key=first_start)
        last = len(rows) + len(teams) - 1
        for index, row in enumerate(rows):
            cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
            text = "  ".join([*cells, *row[4:]]).rstrip()
            yield f"{prefix}{'└── ' if index == last else '├── '}{text}"
        for index, team in enumerate(teams, len(rows)):
            yield f"{prefix}{'└── ' if index == last else '├── '}{team[len(path) + 1 :]}"
            yield from entries(team, prefix + ("    " if index == last else "│   "))

    for root in sorted(children.get(None, []), key=first_start):
        yield f"  {root}"
        yield from entries(root, "  ")


def _step_row(record: StepRecord, failures: Sequence[FailureRecord]) -> list[str]:
    label = record.step if record.item is None else f"{record.step}[{record.item}]"
    agent = _relative(record.agent, record.supervisor) if record.agent else "-"
    attempts = f"{record.attempts} attempt{'' if record.attempts == 1 else 's'}"
    row = [label, record.status.value, agent, attempts, _seconds(record.duration)]
    if record.runs > 1:
        row.append(f"{record.runs} runs")
    if record.review is not None:
        row.append(f"review {record.review}")
    if record.resumed:
        row.append("resumed from a checkpoint")
    if record.agent is not None and record.item is None:
        failed: dict[str, int] = {}
        for failure in failures:
            if (
                failure.step == record.step
                and failure.path.rpartition("/")[0] == record.supervisor
                and failure.path != record.agent
            ):
                name = _relative(failure.path, record.supervisor)
                failed[name] = failed.get(name, 0) + 1
        if failed:
            row.append(
                "reassigned from "
                + ", ".join(f"{name} ({count} failed)" for name, count in failed.items())
            )
    return row


def _render_failure(number: int, failure: FailureRecord, verbose: bool) -> Iterator[str]:
    where = [failure.layer]
    if failure.step is not None:
        where.append(f"step {failure.step}")
    where.append(f"attempt {failure.attempt}")
    where.append(f"at {_seconds(failure.at)}")
    yield f"  {number}. {failure.path}  ({', '.join(where)})"
    message = failure.message
    if message.startswith(f"{failure.path}: "):
        message = message[len(failure.path) + 2 :]
    yield f"     {failure.error_type}: {message}"
    if verbose and failure.traceback:
        for line in failure.traceback.rstrip("\n").splitlines():
            yield f"     | {line}"


def _render_output(output: Any) -> Iterator[str]:
    lines = _pretty(output).splitlines() or [""]
    for line in lines[:OUTPUT_LINES]:
        yield "  " + (line if len(line) <= OUTPUT_WIDTH else line[: OUTPUT_WIDTH - 1] + "…")
    if len(lines) > OUTPUT_LINES:
        more = len(lines) - OUTPUT_LINES
        yield f"  … {more} more line{'' if more == 1 else 's'} (--json prints everything)"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def _relative(path: str, base: str) -> str:
    return path[len(base) + 1 :] if path.startswith(base + "/") else path


def _seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)} min {seconds:.0f} s"


# -- reviewing on the terminal ----------------------------------------------------------


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


# -- overstory run ----------------------------------------------------------------------


def _add_run(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run one goal through a tree and print its outcome",
        description=(
            "Start the tree, run GOAL, stop the tree, and print the outcome: the steps "
            "each supervisor ran, the failure chain and the output. Review points ask "
            "on the terminal (answers are read from stdin) unless --auto-approve is "
            "given or the tree has its own reviewer. Exit status: 0 succeeded; 1 failed, "
            "cancelled, timed out or out of budget; 2 usage error; 130 interrupted."
        ),
    )
    _add_target(parser)
    parser.add_argument("goal", metavar="GOAL", help="what the tree should do, in plain words")
    parser.add_argument(
        "--input",
        metavar="JSON|@FILE",
        type=_json_input,
        default=None,
        help="the goal's input: JSON text, or @path to a JSON file",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=_positive_seconds,
        default=None,
        help="the goal's deadline in seconds (past it the outcome is TIMED_OUT)",
    )
    parser.add_argument(
        "--seed", metavar="N", type=int, default=None, help="seed the backoff jitter"
    )
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="approve every review point without asking (for scripts and tests)",
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the failures' tracebacks"
    )
    _add_telemetry(parser)
    parser.set_defaults(handler=_run)


def _add_telemetry(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "telemetry",
        "OpenTelemetry traces and metrics, one trace per goal, one service per layer. "
        "The standard OTEL_* variables are honoured: with OTEL_EXPORTER_OTLP_ENDPOINT "
        "(or OTEL_TRACES_EXPORTER) set, spans are exported without any flag. Every span "
        "is exported before the command exits.",
    )
    group.add_argument(
        "--trace",
        action="store_true",
        help="draw the goal's trace as a waterfall after the outcome (to stderr with --json)",
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export over OTLP to URL (http://localhost:4318 for HTTP, :4317 for gRPC)",
    )
    where.add_argument(
        "--trace-file",
        metavar="FILE",
        type=Path,
        help="append the spans to FILE as JSON lines (draw them with `overstory trace FILE`)",
    )
    group.add_argument(
        "--otlp-protocol",
        choices=("http/protobuf", "grpc"),
        default=None,
        help="the OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)",
    )
    group.add_argument(
        "--service-name",
        metavar="NAME",
        default=None,
        help="the base of the service names (default: OTEL_SERVICE_NAME, else the tree's name)",
    )


_OTEL_EXPORT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


def _telemetry(args: argparse.Namespace) -> Telemetry | None:
    """The pipeline the flags and the environment ask for, or ``None`` (no SDK at all)."""
    from_environment = any(os.environ.get(name, "").strip() for name in _OTEL_EXPORT_VARIABLES)
    if not (args.trace or args.otlp_endpoint or args.trace_file or from_environment):
        return None
    if args.trace_file is not None:
        exporter = "jsonl"
    elif args.otlp_endpoint is not None or from_environment:
        exporter = "otlp"
    else:
        exporter = "none"
    try:
        return configure(
            exporter=exporter,  # type: ignore[arg-type]
            endpoint=args.otlp_endpoint,
            protocol=args.otlp_protocol,
            path=args.trace_file,
            service_name=args.service_name,
            record=args.trace,
        )
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.trace_file}: {exc.strerror or exc}") from None


def _draw_trace(telemetry: Telemetry, outcome: Outcome, out: TextIO) -> None:
    spans = telemetry.spans()
    roots = [
        s
        for s in spans
        if s.parent_id is None and s.attributes.get("gen_ai.conversation.id") == outcome.goal_id
    ]
    if not roots:
        print("(no trace was recorded: the goal was not sampled)", file=out)
        return
    width = shutil.get_terminal_size((120, 24)).columns
    print(file=out)
    print(render_waterfall(spans, trace_id=roots[0].trace_id, width=width), end="", file=out)


def _json_input(text: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror or exc}") from None
        where = f"{path} is"
    else:
        where = "it is"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{where} not valid JSON: {exc}") from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _run(args: argparse.Namespace) -> int:
    if not args.goal.strip():
        raise CommandError("GOAL must not be empty")
    tree = load_tree(args.target)
    telemetry = _telemetry(args)
    try:
        return _run_tree(args, tree, telemetry)
    finally:
        if telemetry is not None:
            telemetry.close()  # outside trio: exports every span before we exit


def _run_tree(args: argparse.Namespace, tree: Tree, telemetry: Telemetry | None) -> int:
    outcome: Outcome | None = None
    reviewer: TerminalReviewer | None = None
    interrupted = False

    async def execute() -> Outcome | None:
        nonlocal reviewer
        chosen: Reviewer | None = None
        with trio.CancelScope() as scope:
            if args.auto_approve:
                chosen = _auto_approve
            elif tree.reviewer is None:
                chosen = reviewer = TerminalReviewer(sys.stdin, sys.stderr, on_eof=scope.cancel)
            async with tree.running(reviewer=chosen, seed=args.seed) as runner:
                handle = await runner.submit(args.goal, input=args.input, timeout=args.timeout)
                return await handle.outcome()
        return None

    start_error: StartError | None = None
    try:
        outcome = trio.run(execute)
    except* KeyboardInterrupt:
        interrupted = True
    except* StartError as group:
        start_error = _first(group)
    if start_error is not None:  # its message names the agent and what start() raised
        raise CommandError(f"the tree could not start: {start_error}", status=EXIT_FAILED)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome is None:
        assert reviewer is not None
        assert reviewer.closed
        raise CommandError(
            "a review point is waiting but stdin is closed: answer on a terminal, pipe "
            "the answers in (a, r + feedback, e + JSON, one per line), or pass "
            "--auto-approve; the goal was cancelled"
        )
    if args.json:
        print(_outcome_json(outcome))
    else:
        print(render_outcome(outcome, verbose=args.verbose))
    if args.trace and telemetry is not None:
        if telemetry.enabled:
            _draw_trace(telemetry, outcome, sys.stderr if args.json else sys.stdout)
        else:
            print("(no trace: OTEL_SDK_DISABLED=true)", file=sys.stderr)
    return EXIT_OK if outcome.status is Status.SUCCEEDED else EXIT_FAILED


def _first(group: BaseExceptionGroup[StartError]) -> StartError:
    error = group.exceptions[0]
    return error if isinstance(error, StartError) else _first(error)


def _outcome_json(outcome: Outcome) -> str:
    return json.dumps(converter.unstructure(outcome), indent=2, ensure_ascii=False, default=repr)


# -- overstory check --------------------------------------------------------------------


def _add_check(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a tree and draw it",
        description=(
            "Load TARGET, validate the tree (exit 2 with the error, naming the node, when "
            "it is invalid) and draw it."
        ),
    )
    _add_target(parser)
    parser.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    tree = load_tree(args.target)
    print(tree.draw())
    print("ok")
    return EXIT_OK


# -- overstory trace --------------------------------------------------------------------


def _add_trace(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="draw traces from a span file, or a goal's from the daemon",
        description=(
            "Read FILE (written by `overstory run --trace-file FILE` or "
            "ov.telemetry.configure(path=FILE)) and draw each trace as a waterfall: "
            "layer, agent, attempt, duration, status, a bar on the trace's time line, "
            "and the supervision events under the span that decided them."
        ),
    )
    parser.add_argument(
        "file",
        metavar="FILE|ID",
        type=Path,
        help="a JSON-lines span file, or the id of a goal of a running daemon (serve --trace)",
    )
    parser.add_argument("--trace-id", metavar="ID", default=None, help="draw only this trace")
    parser.add_argument("--no-events", action="store_true", help="leave out the span events")
    parser.add_argument(
        "--width",
        metavar="N",
        type=int,
        default=None,
        help="the width of a line (default: the terminal's)",
    )
    from overstory.daemon._cli import add_client_options

    add_client_options(parser)
    parser.set_defaults(handler=_trace)


def _trace(args: argparse.Namespace) -> int:
    text = str(args.file)
    if not args.file.exists() and not args.file.suffix and os.sep not in text and "/" not in text:
        from overstory.daemon._cli import trace  # a goal id: ask the daemon

        return trace(args)
    try:
        with args.file.open(encoding="utf-8") as file:
            spans = load_spans(file)
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    drawn = render_waterfall(spans, width=width, events=not args.no_events, trace_id=args.trace_id)
    if not drawn:
        what = f"trace {args.trace_id}" if args.trace_id else "spans"
        raise CommandError(f"{args.file}: no {what} found", status=EXIT_FAILED)
    print(drawn, end="")
    return EXIT_OK


# -- the parser -------------------------------------------------------------------------


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="the tree: path/to/file.py:NAME or package.module:NAME",
    )


def _add_daemon(subparsers: Any) -> None:
    # The daemon's commands (serve, submit, status, ...) live with the daemon.
    from overstory.daemon._cli import register

    register(subparsers)


#: The subcommands, in the order ``--help`` lists them.
COMMANDS: list[Callable[[Any], None]] = [_add_run, _add_check, _add_trace, _add_daemon]


def build_parser() -> argparse.ArgumentParser:
    """The ``overstory`` argument parser, with every subcommand in :data:`COMMANDS`."""
    from overstory import __version__

    parser = argparse.ArgumentParser(
        prog="overstory",
        description="Teams of AI agents as supervisor trees.",
    )
    parser.add_argument("--version", action="version", version=f"overstory {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit
    status. Output goes to ``sys.stdout`` and ``sys.stderr``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        print(f"overstory {args.command}: error: {exc.message}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout went away early (`overstory run ... | head`): stop writing to it quietly,
        # also when the interpreter flushes it on exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
