"""Telemetry on the command line: the telemetry options of ``overstory run`` (and the
waterfall ``--trace`` draws after the outcome), and ``overstory trace``, which draws the
traces of a span file (or asks the daemon for a goal's). Both sit on the same pipeline and
waterfall, so they change together.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any, TextIO

from overstory._cli_errors import EXIT_FAILED, EXIT_OK, CommandError
from overstory._errors import ConfigurationError
from overstory.hierarchy._outcome import Outcome
from overstory.telemetry._config import Telemetry, configure
from overstory.telemetry._records import load_spans
from overstory.telemetry._waterfall import render_waterfall

# -- overstory run's telemetry options --------------------------------------------------


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
    exporter: str | None
    if args.trace_file is not None:
        exporter = "jsonl"
    elif args.otlp_endpoint is not None:
        exporter = "otlp"
    elif from_environment:
        exporter = None  # configure() reads OTEL_TRACES_EXPORTER (otlp, console, none)
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
