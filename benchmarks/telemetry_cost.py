"""What tracing costs: goals/s with tracing off and on, and the cost per span against
the raw OpenTelemetry SDK doing the same spans, measured in the same run.

    python -m benchmarks.telemetry_cost [--goals 2000] [--repeat 5]

Prints one JSON line per measurement. Both sides export through a ``BatchSpanProcessor``
into an exporter that drops the spans, so what is measured is span creation, context
handling, attributes, events, links and hand-over to the processor; not the network.

* ``goals_per_s``: one tree (strategic → 2 tactical teams → 2 leaves each, a retry on
  every goal), goals run one after the other, tracing off (no-op hooks) and on.
* ``cost_per_span_us``: (time with tracing − time without) / spans recorded, for
  overstory; for the raw SDK, the time of the same number of nested spans with the same
  attributes, events and links, created with ``start_as_current_span`` in a trio task.
* ``ratio`` = overstory's cost per span / the raw SDK's; the target is at most 1.3.

The best of ``--repeat`` runs is taken for each side (least disturbed by the machine).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import trio
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link

import overstory as ov


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
        start = time.perf_counter()
        for _ in range(goals):
            handle = await runner.submit("qualify ACME")
            outcome = await handle.outcome()
            assert outcome.ok, outcome.error
        return time.perf_counter() - start


def _null() -> ov.telemetry.Instrumentation:
    return ov.telemetry.NULL_INSTRUMENTATION


async def raw_sdk(spans_per_goal: int, goals: int, processor: BatchSpanProcessor) -> float:
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
    assert spans_per_goal == 11, spans_per_goal

    def agent(layer: str, name: str, attempt: int, step: str | None) -> dict[str, object]:
        attributes: dict[str, object] = {
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

    start = time.perf_counter()
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
                        previous = None
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
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--goals", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    tree = build_tree()
    goals = args.goals

    off: list[float] = []
    on: list[float] = []
    raw: list[float] = []
    spans_per_goal = 0
    for _ in range(args.repeat):
        off.append(trio.run(run_goals, tree, goals, _null()))
        drop = Drop()
        telemetry = ov.telemetry.configure(exporter=drop, install=False, metric_readers=())
        on.append(trio.run(run_goals, tree, goals, telemetry.instrumentation))
        telemetry.close()
        spans_per_goal = drop.count // goals
        raw_drop = Drop()
        processor = BatchSpanProcessor(raw_drop)
        raw.append(trio.run(raw_sdk, spans_per_goal, goals, processor))
        processor.shutdown()
        assert raw_drop.count == drop.count, (raw_drop.count, drop.count)
    best_off, best_on, best_raw = min(off), min(on), min(raw)
    spans = spans_per_goal * goals
    ours = (best_on - best_off) / spans * 1e6
    theirs = best_raw / spans * 1e6
    for record in (
        {"measure": "goals_per_s", "tracing": "off", "value": round(goals / best_off, 1)},
        {"measure": "goals_per_s", "tracing": "on", "value": round(goals / best_on, 1)},
        {"measure": "spans_per_goal", "value": spans_per_goal},
        {"measure": "cost_per_span_us", "side": "overstory", "value": round(ours, 2)},
        {"measure": "cost_per_span_us", "side": "raw_sdk", "value": round(theirs, 2)},
        {"measure": "ratio", "value": round(ours / theirs, 3), "target": 1.3},
    ):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
