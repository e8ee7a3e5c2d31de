"""Counters and a histogram, rendered in the Prometheus text exposition format (0.0.4)."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["Histogram", "Metrics", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Observations counted into cumulative buckets (upper bounds in seconds)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self, name: str) -> Iterable[str]:
        cumulative = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == math.inf else repr(bound)
            yield f'{name}_bucket{{le="{le}"}} {cumulative}'
        yield f"{name}_sum {self.sum!r}"
        yield f"{name}_count {self.count}"


class Metrics:
    """What the daemon counts while it runs (counters start at zero on each start)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.replayed = 0
        self.purged = 0
        self.refused: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.supervision: Counter[str] = Counter()
        self.http: Counter[tuple[str, str]] = Counter()
        self.accept_seconds = Histogram(
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
        )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(
    metrics: Metrics,
    *,
    gauges: dict[str, tuple[str, float]],
    nodes: Iterable[tuple[str, int, int, int, int | None]],
    journal: tuple[int, int],
) -> str:
    """The exposition text. ``gauges`` maps a name to (help, value); ``nodes`` holds
    (path, in_flight, succeeded, failed, restarts) per node; ``journal`` is
    (commits, operations)."""
    lines: list[str] = []

    def family(name: str, kind: str, help: str) -> None:
        lines.append(f"# HELP {name} {help}")
        lines.append(f"# TYPE {name} {kind}")

    family("overstory_goals_accepted_total", "counter", "Goals committed to the journal.")
    lines.append(f"overstory_goals_accepted_total {metrics.accepted}")
    family(
        "overstory_goals_replayed_total",
        "counter",
        "Submissions answered with an earlier goal (same idempotency key).",
    )
    lines.append(f"overstory_goals_replayed_total {metrics.replayed}")
    family(
        "overstory_goals_purged_total",
        "counter",
        "Finished goals deleted from the journal after the retention period.",
    )
    lines.append(f"overstory_goals_purged_total {metrics.purged}")
    family("overstory_submits_refused_total", "counter", "Submissions refused, by reason.")
    for reason in ("busy", "draining", "invalid", "journal"):
        lines.append(
            f'overstory_submits_refused_total{{reason="{reason}"}} {metrics.refused[reason]}'
        )
    family("overstory_goals_finished_total", "counter", "Goals that ended, by final status.")
    for status in ("succeeded", "failed", "cancelled", "timed_out", "budget_exhausted"):
        lines.append(
            f'overstory_goals_finished_total{{status="{status}"}} {metrics.finished[status]}'
        )
    family(
        "overstory_supervision_events_total",
        "counter",
        "Supervision decisions (retry, reassign, escalate, restart, ...), by kind.",
    )
    for kind, count in sorted(metrics.supervision.items()):
        lines.append(f'overstory_supervision_events_total{{kind="{_label(kind)}"}} {count}')
    family("overstory_http_responses_total", "counter", "HTTP responses, by route and code.")
    for (route, code), count in sorted(metrics.http.items()):
        lines.append(
            f'overstory_http_responses_total{{route="{_label(route)}",code="{code}"}} {count}'
        )
    family(
        "overstory_accept_seconds",
        "histogram",
        "Time from a valid submission to its journal commit.",
    )
    lines.extend(metrics.accept_seconds.samples("overstory_accept_seconds"))
    commits, operations = journal
    family("overstory_journal_commits_total", "counter", "Journal transactions committed.")
    lines.append(f"overstory_journal_commits_total {commits}")
    family("overstory_journal_operations_total", "counter", "Journal writes committed.")
    lines.append(f"overstory_journal_operations_total {operations}")
    for name, (help, value) in gauges.items():
        family(name, "gauge", help)
        lines.append(f"{name} {value:g}")
    columns: dict[str, tuple[str, dict[str, int]]] = {
        "overstory_node_in_flight": ("Attempts running on a node now.", {}),
        "overstory_node_succeeded_total": ("Attempts on a node that succeeded.", {}),
        "overstory_node_failed_total": ("Attempts on a node that failed.", {}),
        "overstory_node_restarts_total": ("Restarts of a stateful agent's instances.", {}),
    }
    for path, in_flight, succeeded, failed, restarts in nodes:
        columns["overstory_node_in_flight"][1][path] = in_flight
        columns["overstory_node_succeeded_total"][1][path] = succeeded
        columns["overstory_node_failed_total"][1][path] = failed
        if restarts is not None:
            columns["overstory_node_restarts_total"][1][path] = restarts
    for name, (help, values) in columns.items():
        family(name, "counter" if name.endswith("_total") else "gauge", help)
        for path, value in values.items():
            lines.append(f'{name}{{path="{_label(path)}"}} {value}')
    return "\n".join(lines) + "\n"
