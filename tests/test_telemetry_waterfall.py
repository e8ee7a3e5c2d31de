"""render_waterfall(): a trace drawn as a tree, from span records alone."""

from __future__ import annotations

from overstory.telemetry import EventRecord, SpanRecord, render_waterfall

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def span(
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: int,
    end_ms: int,
    layer: str,
    **attributes: object,
) -> SpanRecord:
    status = "ERROR" if "error.type" in attributes else "UNSET"
    events = attributes.pop("events", ())
    return SpanRecord(
        trace_id="ab" * 16,
        span_id=span_id,
        parent_id=parent,
        name=name,
        service=f"agency.{layer}",
        start=T0 + start_ms * MS,
        end=T0 + end_ms * MS,
        status=status,
        attributes={"overstory.layer": layer, **attributes},
        events=events,  # type: ignore[arg-type]
    )


TRACE = [
    span(
        "1",
        None,
        "invoke_workflow agency",
        0,
        1000,
        "strategic",
        **{"gen_ai.workflow.name": "agency", "gen_ai.conversation.id": "g1"},
        **{"overstory.goal.status": "succeeded"},
    ),
    span(
        "2",
        "1",
        "invoke_agent director",
        0,
        1000,
        "strategic",
        **{"gen_ai.operation.name": "invoke_agent", "overstory.attempt": 1},
    ),
    span(
        "3",
        "2",
        "invoke_agent sales",
        0,
        500,
        "tactical",
        **{"gen_ai.operation.name": "invoke_agent", "overstory.attempt": 1},
        events=(
            EventRecord(
                name="retry",
                time=T0 + 100 * MS,
                attributes={
                    "overstory.path": "agency/director/sales",
                    "overstory.attempt": 1,
                    "overstory.backoff": 0.25,
                    "error.type": "ValueError",
                    "overstory.message": "crm down",
                },
            ),
        ),
    ),
    span(
        "4",
        "3",
        "invoke_agent crm",
        0,
        100,
        "leaf",
        **{"gen_ai.operation.name": "invoke_agent", "overstory.attempt": 1},
        **{"error.type": "ValueError"},
    ),
    span(
        "5",
        "3",
        "invoke_agent crm",
        350,
        500,
        "leaf",
        **{"gen_ai.operation.name": "invoke_agent", "overstory.attempt": 2},
    ),
    span(
        "6",
        "2",
        "invoke_agent mail",
        500,
        1000,
        "tactical",
        **{"gen_ai.operation.name": "invoke_agent", "overstory.attempt": 1},
        **{"overstory.cancelled": True},
    ),
]


def test_waterfall_draws_tree_durations_statuses_bars_and_events() -> None:
    """Each span is one line: layer, tree branch and name with #attempt, duration,
    status and a bar on the trace's time line; events follow their span."""
    drawn = render_waterfall(TRACE, width=80)
    assert drawn.splitlines() == [
        "trace abababababababababababababababab · agency · goal g1 · succeeded · 1.00 s",
        "strategic  invoke_workflow agency           1.00 s  ok                ████████████",
        "strategic  └─ invoke_agent director #1      1.00 s  ok                ████████████",
        "tactical      ├─ invoke_agent sales #1      500 ms  ok                ██████",
        "              │  │  · +0.10 s retry attempt=1 backoff=0.25s error.type=ValueError"
        " — crm down",
        "leaf          │  ├─ invoke_agent crm #1     100 ms  error ValueError  █",
        "leaf          │  └─ invoke_agent crm #2     150 ms  ok                    ██",
        "tactical      └─ invoke_agent mail #1       500 ms  cancelled               ██████",
    ]


def test_orphans_are_roots_and_traces_are_apart() -> None:
    """A span whose parent is missing is drawn as a root; each trace is its own block,
    and trace_id= keeps one."""
    orphan = SpanRecord(
        trace_id="cd" * 16,
        span_id="9",
        parent_id="missing",
        name="invoke_agent lost",
        service="x.leaf",
        start=T0,
        end=T0 + MS,
    )
    drawn = render_waterfall([*TRACE, orphan], events=False)
    blocks = drawn.split("\n\n")
    assert len(blocks) == 2
    assert blocks[1].splitlines()[1].startswith("leaf  invoke_agent lost")
    assert "retry" not in drawn
    only = render_waterfall([*TRACE, orphan], trace_id="cd" * 16)
    assert "agency" not in only
    assert render_waterfall([]) == ""
