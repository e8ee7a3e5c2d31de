"""W4 tracing: what tracing costs per span, against the raw OpenTelemetry SDK making the
same spans, and goals/s with tracing off and on.

    python -m benchmarks.telemetry_cost SYSTEM [--goals 1000] [--repeat 7]   # the suite's W4
    python -m benchmarks.telemetry_cost [--goals 1000] [--repeat 7]          # every side

With a ``SYSTEM`` it prints one JSON line (``python -m benchmarks`` runs ``sdk`` and
``overstory``, each in a fresh process, and divides their ``us_per_span`` run by run);
without one it measures every side in one process and prints one JSON line per figure.

Times are CPU seconds of this process (``time.process_time``: the batch processor's
thread included, other processes on a shared machine excluded). Every side exports
through a ``BatchSpanProcessor`` into an exporter that drops the spans, so what is
measured is span creation, context handling, attributes, events, links and hand-over to
the processor; not the network. The tree: strategic → 2 tactical teams → 2 leaves each,
one failed and retried attempt on every goal (11 spans), goals run one after the other.

The sides (the best of ``--repeat`` interleaved rounds is taken for each, the one least
disturbed by the machine):

* ``off``, ``on``, ``on_metrics``: the tree with tracing off (the no-op hooks), on, and on
  with metrics (an in-memory reader).
* ``raw_hooks``: the raw SDK behind the same hooks in the same runtime (one
  ``start_as_current_span`` per hook, same attributes, events, links and providers, the
  SDK's own exception recording).
* ``raw_loop``: the raw SDK making the same spans (same nesting, attributes, events,
  links, one exception) in a bare trio loop with no runtime around it: the cheapest the
  SDK can be, and what the target (at most 1.3× per span) is set against.

The systems: ``sdk`` measures ``raw_loop`` (``us_per_span`` = its time / spans);
``overstory`` measures ``off``, ``on`` and ``on_metrics`` (``us_per_span`` = (on − off) /
spans, ``us_per_span_with_metrics`` likewise); ``sdk-hooks`` measures ``off`` and
``raw_hooks``. Each line also gives ``spans_per_goal``, which must agree between systems.
Without a system the lines are ``goals_per_s`` (off, on, on+metrics), ``spans_per_goal``,
``cost_per_span_us`` for the four sides (``overstory``, ``overstory_with_metrics``,
``raw_sdk_hooks``, ``raw_sdk_loop``) and every ``ratio`` of ours to a raw side.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio
from opentelemetry import trace as trace_api
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link
from opentelemetry.util.types import AttributeValue

import overstory as ov
from benchmarks._common import emit


class Drop(SpanExporter):
    """Counts spans and drops them."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def build_tree() -> ov.Tree:
    @ov.leaf(description="Looks leads up in the CRM")
    async def crm(task: ov.Task, ctx: ov.Context) -> str:
        if ctx.attempt == 1 and task.step == "qualify":
            raise ValueError("flaky")
        return "lead"

    @ov.leaf(description="Scores leads")
    async def score(task: ov.Task, ctx: ov.Context) -> int:
        return 3

    @ov.leaf(description="Writes mail")
    async def mail(task: ov.Task, ctx: ov.Context) -> str:
        return "mail"

    @ov.leaf(description="Books calls")
    async def book(task: ov.Task, ctx: ov.Context) -> str:
        return "booked"

    no_wait = ov.Retry(attempts=3, backoff=ov.Backoff(initial=0.0, cap=0.0, jitter=0.0))
    # One failure per goal must never trip the team: every goal has the same shape.
    calm = ov.Intensity(max_failures=10**9)
    return ov.Tree(
        "bench",
        ov.Strategic(
            "director",
            plan=[
                ov.Step("qualify", "qualify the lead", to="sales/crm"),
                ov.Step("score", "score the lead", to="sales/score", after=["qualify"]),
                ov.Step("mail", "write the mail", to="outreach/mail", after=["score"]),
                ov.Step("book", "book the call", to="outreach/book", after=["mail"]),
            ],
            children=[
                ov.Tactical("sales", children=[crm, score], retry=no_wait, intensity=calm),
                ov.Tactical("outreach", children=[mail, book], retry=no_wait),
            ],
            retry=no_wait,
        ),
    )


async def run_goals(
    tree: ov.Tree, goals: int, instrumentation: ov.telemetry.Instrumentation
) -> float:
    async with tree.running(instrumentation=instrumentation, seed=1) as runner:
        start = time.process_time()
        for _ in range(goals):
            handle = await runner.submit("qualify ACME")
            outcome = await handle.outcome()
            assert outcome.ok, outcome.error
        return time.process_time() - start


def _null() -> ov.telemetry.Instrumentation:
    return ov.telemetry.NULL_INSTRUMENTATION


class _RawSpan:
    """The raw SDK behind the runtime's hooks: one ``start_as_current_span`` per hook."""

    def __init__(
        self,
        tracer: trace_api.Tracer,
        name: str,
        attributes: dict[str, Any],
        links: list[Link],
        root: bool,
    ) -> None:
        context = trace_api.set_span_in_context(trace_api.INVALID_SPAN) if root else None
        self._manager = tracer.start_as_current_span(
            name, context=context, attributes=attributes, links=links
        )

    def __enter__(self) -> _RawSpan:
        self.span = self._manager.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._manager.__exit__(*exc)

    def add_event(self, name: str, attributes: Mapping[str, Any]) -> None:
        self.span.add_event(name, attributes)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.span.set_attributes(attributes)

    def record_failure(self, error: BaseException) -> None:
        self.span.set_attribute("error.type", type(error).__name__)
        self.span.record_exception(error)
        self.span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, str(error)))


class RawSdkInstrumentation:
    """What instrumenting the runtime with the raw SDK takes: the same spans, attributes,
    events and links, one provider per layer on one processor, nothing else (no scope in
    the context, no metrics, no cancellation handling, the SDK's own exception recording)."""

    def __init__(self, processor: BatchSpanProcessor) -> None:
        self.tracers = {}
        for layer in ov.Layer:
            provider = TracerProvider(
                resource=Resource.create({"service.name": f"raw.{layer.value}"}),
                shutdown_on_exit=False,
            )
            provider.add_span_processor(processor)
            self.tracers[layer] = provider.get_tracer("raw")

    def goal(self, *, tree: str, goal_id: str, goal: str, layer: ov.Layer) -> _RawSpan:
        attributes = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": tree,
            "gen_ai.conversation.id": goal_id,
            "overstory.layer": layer.value,
            "overstory.tree": tree,
            "overstory.goal": goal,
        }
        return _RawSpan(self.tracers[layer], f"invoke_workflow {tree}", attributes, [], True)

    def invoke(
        self,
        *,
        layer: ov.Layer,
        name: str,
        path: str,
        description: str,
        goal_id: str,
        step: str | None,
        attempt: int,
        previous: Any,
        attributes: Mapping[str, Any],
    ) -> _RawSpan:
        span_attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "gen_ai.agent.id": path,
            "gen_ai.conversation.id": goal_id,
            "overstory.layer": layer.value,
            "overstory.path": path,
            "overstory.attempt": attempt,
            **attributes,
        }
        if description:
            span_attributes["gen_ai.agent.description"] = description
        if step is not None:
            span_attributes["overstory.step"] = step
        links = [Link(previous.span.get_span_context())] if isinstance(previous, _RawSpan) else []
        return _RawSpan(self.tracers[layer], f"invoke_agent {name}", span_attributes, links, False)

    def plan(self, *, name: str, path: str, goal_id: str) -> _RawSpan:
        return _RawSpan(self.tracers[ov.Layer.STRATEGIC], f"plan {name}", {}, [], False)

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        pass


async def raw_sdk(goals: int, processor: BatchSpanProcessor) -> float:
    """The same shape by hand: a goal span, 1 root, 4 team attempts, 5 leaf attempts
    (one failing with an exception, one linked to it), 2 events on the supervisors."""
    providers = {
        layer: TracerProvider(
            resource=Resource.create({"service.name": f"raw.{layer}"}), shutdown_on_exit=False
        )
        for layer in ("strategic", "tactical", "leaf")
    }
    for provider in providers.values():
        provider.add_span_processor(processor)
    tracers = {layer: p.get_tracer("raw") for layer, p in providers.items()}

    def agent(layer: str, name: str, attempt: int, step: str | None) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "gen_ai.agent.id": f"bench/{name}",
            "gen_ai.conversation.id": "g",
            "overstory.layer": layer,
            "overstory.path": f"bench/{name}",
            "overstory.attempt": attempt,
            "gen_ai.agent.description": "x",
        }
        if step:
            attributes["overstory.step"] = step
        return attributes

    start = time.process_time()
    for _ in range(goals):
        with (
            tracers["strategic"].start_as_current_span(
                "invoke_workflow bench",
                context=trace_api.set_span_in_context(trace_api.INVALID_SPAN),
                attributes={
                    "gen_ai.operation.name": "invoke_workflow",
                    "gen_ai.workflow.name": "b",
                },
            ),
            tracers["strategic"].start_as_current_span(
                "invoke_agent director", attributes=agent("strategic", "director", 1, None)
            ),
        ):
            for team, leaves in (("sales", ("crm", "score")), ("outreach", ("mail", "book"))):
                for leaf in leaves:
                    with tracers["tactical"].start_as_current_span(
                        f"invoke_agent {team}", attributes=agent("tactical", team, 1, leaf)
                    ) as team_span:
                        previous: trace_api.Span | None = None
                        for attempt in (1, 2) if leaf == "crm" else (1,):
                            links = [Link(previous.get_span_context())] if previous else []
                            try:
                                with tracers["leaf"].start_as_current_span(
                                    f"invoke_agent {leaf}",
                                    attributes=agent("leaf", leaf, attempt, leaf),
                                    links=links,
                                ) as leaf_span:
                                    previous = leaf_span
                                    if attempt == 1 and leaf == "crm":
                                        raise ValueError("flaky")
                            except ValueError:
                                team_span.add_event(
                                    "retry", {"overstory.attempt": 1, "error.type": "E"}
                                )
                    await trio.lowlevel.checkpoint()
    return time.process_time() - start


SYSTEMS = ("sdk", "overstory", "sdk-hooks")

#: What each system measures, in one process: tracing off (the no-op hooks), on, on with
#: metrics, the raw SDK behind the hooks, the raw SDK in a bare loop.
SIDES: dict[str | None, tuple[str, ...]] = {
    None: ("off", "on", "on_metrics", "raw_hooks", "raw_loop"),
    "sdk": ("raw_loop",),
    "overstory": ("off", "on", "on_metrics"),
    "sdk-hooks": ("off", "raw_hooks"),
}


def with_telemetry(
    metrics: bool, measure: Callable[[ov.telemetry.Instrumentation], float]
) -> tuple[float, int]:
    """``measure`` under overstory's telemetry, exporting into an exporter that drops
    the spans (and with an in-memory metric reader when ``metrics``): (its CPU seconds,
    spans exported)."""
    drop = Drop()
    readers = [InMemoryMetricReader()] if metrics else []
    telemetry = ov.telemetry.configure(exporter=drop, install=False, metric_readers=readers)
    seconds = measure(telemetry.instrumentation)
    telemetry.close()
    return seconds, drop.count


def measure_side(side: str, tree: ov.Tree, goals: int) -> tuple[float, int]:
    """One measurement of one side: (CPU seconds, spans exported)."""
    if side == "off":
        return trio.run(run_goals, tree, goals, _null()), 0
    if side in ("on", "on_metrics"):
        return with_telemetry(
            side == "on_metrics",
            lambda instrumentation: trio.run(run_goals, tree, goals, instrumentation),
        )
    drop = Drop()
    processor = BatchSpanProcessor(drop)
    if side == "raw_hooks":
        seconds = trio.run(run_goals, tree, goals, RawSdkInstrumentation(processor))
    else:
        seconds = trio.run(raw_sdk, goals, processor)
    processor.shutdown()  # type: ignore[no-untyped-call]
    return seconds, drop.count


def measure(sides: Sequence[str], goals: int, repeat: int) -> tuple[dict[str, float], int]:
    """The best CPU time of each side over ``repeat`` interleaved rounds, and the spans per
    goal (every side that traces must export the same number)."""
    # Every side exports through a BatchSpanProcessor; with the default queue of 2,048 the
    # fastest side (the bare loop) outruns the export thread and drops spans, which would
    # make it look cheaper. A queue that holds a whole measurement keeps the sides equal.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(max(2048, goals * 64))
    tree = build_tree()
    times: dict[str, list[float]] = {side: [] for side in sides}
    counts: dict[str, int] = {}
    for _ in range(repeat):  # interleaved, so that a noisy moment hits every side
        for side in sides:
            seconds, count = measure_side(side, tree, goals)
            times[side].append(seconds)
            if side != "off":
                counts[side] = count
    assert len(set(counts.values())) == 1, counts
    (spans,) = set(counts.values())
    return {side: min(values) for side, values in times.items()}, spans // goals


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.telemetry_cost",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument(
        "system",
        nargs="?",
        choices=SYSTEMS,
        help="measure one system and print one JSON line (the suite's W4); "
        "without it, measure every side and print one line per figure",
    )
    p.add_argument("--goals", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=7)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    goals: int = args.goals
    best, spans_per_goal = measure(SIDES[args.system], goals, args.repeat)
    spans = spans_per_goal * goals

    def per_span(seconds: float) -> float:
        return seconds / spans * 1e6

    common = {"goals": goals, "repeat": args.repeat, "spans_per_goal": spans_per_goal}
    if args.system == "sdk":
        seconds = best["raw_loop"]
        emit("W4", "sdk", **common, cpu_seconds=seconds, us_per_span=per_span(seconds))
        return
    if args.system == "overstory":
        emit(
            "W4",
            "overstory",
            **common,
            us_per_span=per_span(best["on"] - best["off"]),
            us_per_span_with_metrics=per_span(best["on_metrics"] - best["off"]),
            goals_per_s_off=goals / best["off"],
            goals_per_s_on=goals / best["on"],
            goals_per_s_on_metrics=goals / best["on_metrics"],
        )
        return
    if args.system == "sdk-hooks":
        emit(
            "W4",
            "sdk-hooks",
            **common,
            us_per_span=per_span(best["raw_hooks"] - best["off"]),
            goals_per_s_off=goals / best["off"],
            goals_per_s_on=goals / best["raw_hooks"],
        )
        return

    cost = {
        "overstory": per_span(best["on"] - best["off"]),
        "overstory_with_metrics": per_span(best["on_metrics"] - best["off"]),
        "raw_sdk_hooks": per_span(best["raw_hooks"] - best["off"]),
        "raw_sdk_loop": per_span(best["raw_loop"]),
    }

    records: list[dict[str, Any]] = [
        {"measure": "goals_per_s", "tracing": "off", "value": round(goals / best["off"], 1)},
        {"measure": "goals_per_s", "tracing": "on", "value": round(goals / best["on"], 1)},
        {
            "measure": "goals_per_s",
            "tracing": "on+metrics",
            "value": round(goals / best["on_metrics"], 1),
        },
        {"measure": "spans_per_goal", "value": spans_per_goal},
    ]
    records += [
        {"measure": "cost_per_span_us", "side": side, "value": round(value, 2)}
        for side, value in cost.items()
    ]
    for ours in ("overstory", "overstory_with_metrics"):
        for theirs in ("raw_sdk_hooks", "raw_sdk_loop"):
            records.append(
                {
                    "measure": "ratio",
                    "ours": ours,
                    "raw": theirs,
                    "value": round(cost[ours] / cost[theirs], 3),
                    "target": 1.3,
                }
            )
    for record in records:
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
