"""Drawing traces as waterfall trees in the terminal: a pure function over span records.

::

    trace 4bf92f35… · agency · goal 6a1d… · succeeded · 1.20 s
    strategic  invoke_workflow agency           1.20 s  ok         ██████████████████████
    strategic  └─ invoke_agent director #1      1.19 s  ok         ██████████████████████
    tactical      ├─ invoke_agent sales #1      0.80 s  ok          ██████████████
    leaf          │  ├─ invoke_agent crm #1      100 ms  error       ██
               │  │     · +0.10 s exception ValueError: boom
    ...
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from overstory.telemetry._records import EventRecord, SpanRecord

__all__ = ["render_waterfall"]

# Event attributes not worth a column: they repeat the span's own.
_QUIET = frozenset(
    {"gen_ai.conversation.id", "overstory.path", "exception.stacktrace", "exception.escaped"}
)


def _duration(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def _layer(span: SpanRecord) -> str:
    layer = span.attributes.get("overstory.layer")
    if isinstance(layer, str):
        return layer
    return span.service.rsplit(".", 1)[-1] if span.service else ""


def _label(span: SpanRecord) -> str:
    attempt = span.attributes.get("overstory.attempt")
    item = span.attributes.get("overstory.item")
    label = span.name
    if item is not None:
        label += f"[{item}]"
    if attempt is not None and span.attributes.get("gen_ai.operation.name") == "invoke_agent":
        label += f" #{attempt}"
    return label


def _status(span: SpanRecord) -> str:
    if span.attributes.get("overstory.cancelled"):
        return "cancelled"
    if span.status == "ERROR":
        error = span.attributes.get("error.type")
        return f"error {error}" if error else "error"
    return "ok"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _event(event: EventRecord, start: int) -> str:
    offset = f"+{(event.time - start) / 1e9:.2f} s"
    attributes = event.attributes
    if event.name == "exception":
        return (
            f"· {offset} exception {attributes.get('exception.type', '?')}: "
            f"{attributes.get('exception.message', '')}"
        )
    parts = [f"· {offset} {event.name}"]
    message = attributes.get("overstory.message")
    for key, value in attributes.items():
        if key in _QUIET or key == "overstory.message":
            continue
        short = key.removeprefix("overstory.")
        if short == "backoff" and isinstance(value, int | float):
            parts.append(f"backoff={value:.3g}s")
        else:
            parts.append(f"{short}={_value(value)}")
    if message:
        parts.append(f"— {message}")
    return " ".join(parts)


def _tree(
    spans: Sequence[SpanRecord],
) -> tuple[list[SpanRecord], Mapping[str, list[SpanRecord]]]:
    ids = {span.span_id for span in spans}
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    roots: list[SpanRecord] = []
    for span in spans:
        if span.parent_id is not None and span.parent_id in ids:
            children[span.parent_id].append(span)
        else:
            roots.append(span)
    for group in children.values():
        group.sort(key=lambda s: (s.start, s.name))
    roots.sort(key=lambda s: (s.start, s.name))
    return roots, children


def render_waterfall(
    spans: Iterable[SpanRecord],
    *,
    width: int = 100,
    events: bool = True,
    trace_id: str | None = None,
) -> str:
    """Draw each trace in ``spans`` as a tree, one span a line, oldest trace first.

    Each line shows the span's layer, its place in the tree and name (``#n`` is the
    attempt, ``[i]`` the fan-out item), its duration, its status (``ok``, ``error TYPE``,
    ``cancelled``) and a bar placed on the trace's time line. With ``events`` every
    span event (retry, reassign, escalate, exception, ...) follows its span, with its
    time from the span's start. A span whose parent is not among ``spans`` is drawn as
    a root. ``trace_id`` keeps one trace; ``width`` is the width of the whole line.
    """
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        if trace_id is None or span.trace_id == trace_id:
            by_trace[span.trace_id].append(span)
    blocks = [
        _render_trace(trace, group, width=width, events=events)
        for trace, group in sorted(by_trace.items(), key=lambda kv: min(s.start for s in kv[1]))
    ]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def _render_trace(trace: str, spans: list[SpanRecord], *, width: int, events: bool) -> str:
    roots, children = _tree(spans)
    begin = min(span.start for span in spans)
    finish = max(span.end for span in spans)
    total = max(finish - begin, 1)
    rows: list[tuple[SpanRecord, str, str]] = []  # span, prefix of its line, of its events

    def walk(span: SpanRecord, lead: str, branch: str, below: str) -> None:
        rows.append((span, lead + branch, lead + below))
        kids = children.get(span.span_id, [])
        for index, kid in enumerate(kids):
            last = index == len(kids) - 1
            walk(kid, lead + below, "└─ " if last else "├─ ", "   " if last else "│  ")

    for root in roots:
        walk(root, "", "", "")
    layer_width = max(len(_layer(span)) for span in spans)
    name_width = min(max(len(prefix + _label(span)) for span, prefix, _ in rows), 60)
    status_width = max(len(_status(span)) for span in spans)
    fixed = layer_width + name_width + 9 + status_width + 6
    bar_width = max(width - fixed, 10)

    root = roots[0]
    title = [f"trace {trace}"]
    tree = root.attributes.get("gen_ai.workflow.name")
    if tree:
        title.append(str(tree))
    goal = root.attributes.get("gen_ai.conversation.id")
    if goal:
        title.append(f"goal {goal}")
    status = root.attributes.get("overstory.goal.status")
    if status:
        title.append(str(status))
    title.append(_duration(total / 1e9))
    lines = [" · ".join(title)]
    for span, prefix, below in rows:
        left = round((span.start - begin) / total * bar_width)
        length = max(1, round((span.end - span.start) / total * bar_width))
        bar = " " * min(left, bar_width - 1) + "█" * min(length, bar_width - left)
        label = (prefix + _label(span))[:name_width]
        lines.append(
            f"{_layer(span):<{layer_width}}  {label:<{name_width}}  "
            f"{_duration(span.duration):>9}  {_status(span):<{status_width}}  {bar}".rstrip()
        )
        if events:
            has_children = bool(children.get(span.span_id))
            indent = " " * layer_width + "  " + below + ("│  " if has_children else "   ")
            for event in span.events:
                lines.append((indent + _event(event, span.start)).rstrip())
    return "\n".join(lines)
