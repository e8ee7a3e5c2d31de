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

This module holds the parser, :func:`main` and the ``run`` and ``check`` commands; the
rest is split by idea so each part reads on its own: ``_cli_errors`` (exit statuses,
:class:`CommandError`), ``_cli_load`` (loading TARGET), ``_cli_render`` (the readable
outcome), ``_cli_review`` (the terminal reviewer) and ``_cli_telemetry`` (``run``'s
telemetry options and ``overstory trace``). Their public names are re-imported here, so
``overstory._cli`` stays the one place other modules and tests import the CLI from.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

# Re-imported (``X as X`` marks them as re-exports for mypy --strict) because
# overstory.daemon._cli, the tests and the ``overstory`` entry point import them from here.
from overstory._cli_errors import EXIT_FAILED as EXIT_FAILED
from overstory._cli_errors import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from overstory._cli_errors import EXIT_OK as EXIT_OK
from overstory._cli_errors import EXIT_USAGE as EXIT_USAGE
from overstory._cli_errors import CommandError as CommandError
from overstory._cli_load import load_tree as load_tree
from overstory._cli_render import OUTPUT_LINES as OUTPUT_LINES
from overstory._cli_render import OUTPUT_WIDTH as OUTPUT_WIDTH
from overstory._cli_render import _outcome_json
from overstory._cli_render import render_outcome as render_outcome
from overstory._cli_review import TerminalReviewer as TerminalReviewer
from overstory._cli_telemetry import _add_telemetry, _add_trace, _draw_trace, _telemetry
from overstory._errors import StartError
from overstory.hierarchy._outcome import Outcome, Status
from overstory.hierarchy._review import Reviewer
from overstory.hierarchy._review import auto_approve as _auto_approve
from overstory.hierarchy._tree import Tree
from overstory.telemetry._config import Telemetry

__all__ = [
    "COMMANDS",
    "CommandError",
    "TerminalReviewer",
    "build_parser",
    "load_tree",
    "main",
    "render_outcome",
]

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
