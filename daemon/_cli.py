"""The daemon's commands: ``overstory serve`` and the client commands.

:func:`register` adds them to the ``overstory`` parser (``overstory._cli``); each sets
``handler`` to a function of the parsed arguments that returns the exit status: 0 ok,
1 the goal failed (or the tree could not start), 2 a usage error, no daemon, or a
refused token. Problems are raised as :class:`~overstory._cli.CommandError`, which the
``overstory`` command prints as one paragraph, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from overstory._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, load_tree
from overstory._errors import ConfigurationError, StartError
from overstory.daemon._client import ApiError, Client, DaemonError, DaemonUnavailable
from overstory.daemon._config import DEFAULT_RETENTION, DEFAULT_TRACE_LIMIT, SYNCHRONOUS
from overstory.daemon._view import GoalView, describe_event, render_health

__all__ = ["add_client_options", "register", "trace"]


# -- argument parsing -------------------------------------------------------------------


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that talks to a daemon takes."""
    group = parser.add_argument_group("daemon")
    group.add_argument("--url", help="the daemon's URL (default: $OVERSTORY_URL, or found)")
    group.add_argument("--token", help="a bearer token (default: $OVERSTORY_TOKEN, or STATE/token)")
    group.add_argument("--state-dir", type=Path, help="the daemon's state directory")
    group.add_argument("--json", action="store_true", help="print the API's JSON")


def register(subparsers: Any) -> None:
    """Add ``serve`` and the client commands to an argparse subparsers object."""
    client = argparse.ArgumentParser(add_help=False)
    add_client_options(client)

    serve = subparsers.add_parser(
        "serve",
        help="run a tree as a daemon with an HTTP API",
        description=(
            "Run TARGET (file.py:tree or package.module:tree) as a long-lived service: "
            "goals arrive over HTTP, are journalled in STATE/journal.sqlite3 before they are "
            "acknowledged, and resume after a crash or restart. SIGTERM or SIGINT drains; a "
            "second one stops at once."
        ),
    )
    serve.add_argument("target", help="the tree: path/to/file.py:tree or module:tree")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8177, help="port (default 8177; 0: any free)")
    serve.add_argument("--state-dir", type=Path, help="journal and token (default: see docs)")
    serve.add_argument("--max-concurrent", type=int, default=8, help="goals running at once")
    serve.add_argument("--max-queue", type=int, default=1000, help="goals waiting before 429")
    serve.add_argument("--grace", type=float, default=30.0, help="seconds to drain on SIGTERM")
    serve.add_argument("--max-body", type=int, default=1_048_576, help="request size limit")
    serve.add_argument("--tokens", type=Path, help="TOML file of tokens per role")
    serve.add_argument(
        "--synchronous",
        choices=SYNCHRONOUS,
        default="normal",
        help="normal (default): an accepted goal survives the daemon being killed; full: "
        "also power loss (each commit is fsynced), at a lower rate",
    )
    serve.add_argument(
        "--retention",
        type=retention,
        default=DEFAULT_RETENTION,
        metavar="DURATION",
        help="how long a finished goal stays in the journal: 7d (default), 12h, 30m, 90s, "
        "or forever",
    )
    serve.add_argument(
        "--trace",
        action="store_true",
        help="record spans in STATE/traces.jsonl for `overstory trace ID` (otherwise spans "
        "go where the OTEL_* variables say)",
    )
    serve.add_argument(
        "--trace-limit",
        type=mebibytes,
        default=DEFAULT_TRACE_LIMIT,
        metavar="MIB",
        help="with --trace: rotate traces.jsonl to traces.jsonl.1 at this many MiB (default 64)",
    )
    serve.set_defaults(handler=_serve)

    submit = subparsers.add_parser("submit", parents=[client], help="submit a goal")
    submit.add_argument("goal", help="the goal, in plain language")
    submit.add_argument("--input", help="the goal's input: JSON text, or @file.json")
    submit.add_argument("--priority", type=int, default=0, help="higher starts first")
    submit.add_argument("--timeout", type=float, help="seconds the goal may run")
    submit.add_argument("--key", help="an idempotency key: resubmitting returns the first goal")
    submit.add_argument("--wait", action="store_true", help="follow the goal live until it ends")
    submit.set_defaults(handler=_submit)

    status = subparsers.add_parser("status", parents=[client], help="show one goal")
    status.add_argument("id")
    status.set_defaults(handler=_status)

    listing = subparsers.add_parser("list", parents=[client], help="list goals, newest first")
    listing.add_argument("--status", help="only goals in this status")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=_list)

    cancel = subparsers.add_parser("cancel", parents=[client], help="cancel a goal")
    cancel.add_argument("id")
    cancel.set_defaults(handler=_cancel)

    reviews = subparsers.add_parser("reviews", parents=[client], help="list pending reviews")
    reviews.add_argument("--all", action="store_true", help="decided ones too")
    reviews.set_defaults(handler=_reviews)

    approve = subparsers.add_parser("approve", parents=[client], help="approve a review")
    approve.add_argument("id", type=int)
    approve.set_defaults(handler=_approve)

    reject = subparsers.add_parser("reject", parents=[client], help="reject a review")
    reject.add_argument("id", type=int)
    reject.add_argument("--reason", required=True, help="feedback for the agent")
    reject.set_defaults(handler=_reject)

    tree = subparsers.add_parser("tree", parents=[client], help="the live tree's health")
    tree.set_defaults(handler=_tree)

    events = subparsers.add_parser("events", parents=[client], help="a goal's events")
    events.add_argument("id")
    events.add_argument("--follow", "-f", action="store_true", help="until the goal ends")
    events.set_defaults(handler=_events)


def _talks_to_daemon(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Report the client's failures (no daemon, refused token, refused request) as
    :class:`CommandError`, exit status 2."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except DaemonUnavailable as exc:
            raise CommandError(
                f"{exc}. Is the daemon running? Start one with `overstory serve FILE.py:tree`, "
                "or point --url (or $OVERSTORY_URL) at it."
            ) from None
        except ApiError as exc:
            raise CommandError(_explain(exc)) from None
        except DaemonError as exc:
            raise CommandError(str(exc)) from None

    return wrapper


def _say(message: str, stream: TextIO | None = None) -> None:
    print(f"overstory: {message}", file=stream or sys.stderr)


def _explain(exc: ApiError) -> str:
    if exc.status == 401:
        return (
            f"the daemon refused the token ({exc.message}). The CLI reads --token, "
            "$OVERSTORY_TOKEN, or the token file in the daemon's --state-dir; make sure they "
            "belong to this daemon."
        )
    if exc.status == 403:
        return f"not allowed: {exc.message}."
    details = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in exc.problems)
    message = exc.message if not details or details in exc.message else f"{exc.message} ({details})"
    return f"the daemon answered {exc.status} {exc.error}: {message}"


def _client(args: argparse.Namespace) -> Client:
    return Client.discover(url=args.url, token=args.token, state_dir=args.state_dir)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- serve ------------------------------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def retention(text: str) -> float | None:
    """``--retention``: a duration such as ``7d``, ``12h``, ``30m`` or ``90s``, in
    seconds; ``forever`` is ``None``. Raises :class:`argparse.ArgumentTypeError` naming
    what is wrong."""
    given = text.strip().lower()
    if given == "forever":
        return None
    number, unit = given[:-1], given[-1:]
    try:
        value = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(
            f"must be a positive duration such as 7d, 12h, 30m or 90s, or 'forever'; got {text!r}"
        )
    return value


def mebibytes(text: str) -> int:
    """``--trace-limit``'s MiB as bytes; raises ``ArgumentTypeError`` unless it is a
    number of MiB that comes to at least 1 KiB."""
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of MiB, got {text!r}")
    if round(value * 2**20) < 1024:  # Config's bound, said here in the flag's unit
        raise argparse.ArgumentTypeError(f"must be at least 1/1024 MiB (1 KiB), got {text!r}")
    return round(value * 2**20)


def _serve(args: argparse.Namespace) -> int:
    import trio

    from overstory.daemon._auth import AuthError
    from overstory.daemon._config import Config, default_state_dir
    from overstory.daemon._journal import SchemaMismatch
    from overstory.daemon._server import serve

    tree = load_tree(args.target)
    try:
        config = Config(
            state_dir=args.state_dir or default_state_dir(),
            host=args.host,
            port=args.port,
            max_concurrent=args.max_concurrent,
            max_queue=args.max_queue,
            grace=args.grace,
            max_body=args.max_body,
            tokens_file=args.tokens,
            trace=args.trace,
            synchronous=args.synchronous,
            retention=args.retention,
            trace_limit=args.trace_limit,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    logging.basicConfig(
        level=logging.INFO, format="overstory: %(message)s", stream=sys.stderr, force=True
    )
    try:
        return trio.run(lambda: serve(tree, config, handle_signals=True))
    except BaseException as exc:
        problem = _expected(
            exc, (ConfigurationError, AuthError, SchemaMismatch, StartError, OSError)
        )
        if problem is None:
            raise
        if isinstance(problem, OSError):
            raise CommandError(f"cannot serve on {config.host}:{config.port}: {problem}") from None
        status = EXIT_FAILED if isinstance(problem, StartError) else EXIT_USAGE
        raise CommandError(str(problem), status=status) from None


def _expected(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc`` or its groups (a start error surfaces
    wrapped in the nurseries' groups)."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _expected(inner, kinds)
            if found is not None:
                return found
    return None


# -- client commands --------------------------------------------------------------------


def _input(text: str | None) -> Any:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise CommandError(f"--input {text}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--input is not JSON: {exc}") from None


@_talks_to_daemon
def _submit(args: argparse.Namespace) -> int:
    input = _input(args.input)
    with _client(args) as client:
        goal = client.submit(
            args.goal,
            input=input,
            priority=args.priority,
            timeout=args.timeout,
            idempotency_key=args.key,
        )
        if not args.wait:
            if args.json:
                _print_json(goal)
            else:
                print(goal["id"])
            return EXIT_OK
        _say(f"goal {goal['id']} accepted; following it (Ctrl-C stops following, not the goal)")
        view = GoalView(goal["id"], goal=goal["goal"])
        _follow(client.events(goal["id"]), view, live=sys.stdout.isatty() and not args.json)
        if not view.ended:
            raise CommandError(
                f"the daemon stopped before goal {goal['id']} ended; the goal resumes when the "
                f"daemon starts again. Follow it with `overstory events {goal['id']} --follow`."
            )
        final = client.goal(goal["id"])
    if args.json:
        _print_json(final)
    elif final["status"] == "succeeded":
        _print_json((final.get("outcome") or {}).get("output"))
    else:
        _say(f"goal {final['id']} {final['status']}: {final.get('error') or 'no detail'}")
    return EXIT_OK if final["status"] == "succeeded" else EXIT_FAILED


def _follow(events: Iterator[dict[str, Any]], view: GoalView, *, live: bool) -> None:
    drawn = 0
    for event in events:
        view.apply(event)
        if live:
            text = view.render()
            if drawn:
                sys.stdout.write(f"\x1b[{drawn}F\x1b[J")
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            drawn = text.count("\n") + 1
        else:
            print(describe_event(event), file=sys.stderr)
    if not live:
        print(view.render(), file=sys.stderr)


@_talks_to_daemon
def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        goal = _known(lambda: client.goal(args.id), f"no goal {args.id}")
    if args.json:
        _print_json(goal)
        return EXIT_OK
    print(f"goal {goal['id']}: {goal['status']}  (priority {goal['priority']})")
    print(f"  {goal['goal']}")
    for step in goal["steps"]:
        print(f"  ✓ {step['key']}")
    for attempt in goal["running"]:
        if attempt["step"] is not None:
            print(f"  ▶ {attempt['path']} on {attempt['step']} (attempt {attempt['attempt']})")
    for review in goal["pending_reviews"]:
        print(f"  ⏸ waiting for review {review} (overstory approve {review})")
    if goal.get("error"):
        print(f"  error: {goal['error']}")
    if goal["status"] == "succeeded":
        print(json.dumps((goal.get("outcome") or {}).get("output"), indent=2, ensure_ascii=False))
    return EXIT_OK


def _known(call: Callable[[], dict[str, Any]], missing: str) -> dict[str, Any]:
    try:
        return call()
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(missing) from None
        raise


@_talks_to_daemon
def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.goals(status=args.status, limit=args.limit)
    if args.json:
        _print_json(page)
        return EXIT_OK
    for goal in page["goals"]:
        print(f"{goal['id']}  {goal['status']:<10} {goal['priority']:>4}  {goal['goal'][:60]}")
    if not page["goals"]:
        _say("no goals")
    return EXIT_OK


@_talks_to_daemon
def _cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        goal = _known(lambda: client.cancel(args.id), f"no goal {args.id}")
    if args.json:
        _print_json(goal)
    else:
        print(
            f"goal {goal['id']}: {'cancelled' if goal['status'] == 'cancelled' else 'cancelling'}"
        )
    return EXIT_OK


@_talks_to_daemon
def _reviews(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reviews = client.reviews(status="all" if args.all else "pending")
    if args.json:
        _print_json(reviews)
        return EXIT_OK
    for review in reviews["reviews"]:
        output = json.dumps(review["output"], ensure_ascii=False)
        print(
            f"{review['id']:>5}  {review['status']:<8} goal {review['goal_id']}  "
            f"{review['path']} step {review['step']} round {review['round']}\n"
            f"       {output[:200]}"
        )
    if not reviews["reviews"]:
        _say("no reviews pending" if not args.all else "no reviews")
    return EXIT_OK


@_talks_to_daemon
def _approve(args: argparse.Namespace) -> int:
    with _client(args) as client:
        review = _known(lambda: client.approve(args.id), f"no review {args.id}")
    _print_json(review) if args.json else print(f"review {review['id']}: approved")
    return EXIT_OK


@_talks_to_daemon
def _reject(args: argparse.Namespace) -> int:
    with _client(args) as client:
        review = _known(lambda: client.reject(args.id, args.reason), f"no review {args.id}")
    _print_json(review) if args.json else print(f"review {review['id']}: rejected")
    return EXIT_OK


@_talks_to_daemon
def _tree(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tree = client.tree()
    _print_json(tree) if args.json else print(render_health(tree))
    return EXIT_OK


@_talks_to_daemon
def _events(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            for event in client.events(args.id, follow=args.follow):
                if args.json:
                    print(json.dumps(event, ensure_ascii=False), flush=True)
                else:
                    print(describe_event(event), flush=True)
        except ApiError as exc:
            if exc.status == 404:
                raise CommandError(f"no goal {args.id}") from None
            raise
    return EXIT_OK


@_talks_to_daemon
def trace(args: argparse.Namespace) -> int:
    """``overstory trace ID``: the goal's recorded spans from the daemon, as a waterfall."""
    from overstory.telemetry import load_spans, render_waterfall

    with _client(args) as client:
        found = _known(lambda: client.trace(str(args.file)), f"no goal {args.file}")
    if args.json:
        _print_json(found)
        return EXIT_OK
    spans = load_spans(json.dumps(span) for span in found["spans"])
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    drawn = render_waterfall(spans, width=width, events=not args.no_events)
    if not drawn:
        raise CommandError(f"no spans of goal {args.file} were recorded", status=EXIT_FAILED)
    print(drawn, end="")
    return EXIT_OK
