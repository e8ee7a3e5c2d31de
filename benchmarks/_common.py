"""What every benchmark program shares: memory readings and the one-JSON-line result."""

from __future__ import annotations

import gc
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["current_rss_mb", "emit", "peak_rss_mb", "timed"]


def current_rss_mb(pid: int | None = None) -> float:
    """The resident set size now, in MiB (Linux ``/proc``), of process ``pid`` (default:
    this one). Without ``/proc``, this process's peak instead; for another process,
    :class:`OSError`."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        if pid is not None:
            raise
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def timed(body: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``body`` with the garbage collector in its normal state; return (seconds, result)."""
    gc.collect()
    start = time.perf_counter()
    result = body()
    return time.perf_counter() - start, result


def emit(workload: str, system: str, **figures: Any) -> None:
    """Print the result line the runner reads (the last line of stdout)."""
    record = {
        "workload": workload,
        "system": system,
        "python": platform.python_version(),
        **figures,
    }
    print(json.dumps(record, sort_keys=True), flush=True)
