"""The daemon's settings, validated once."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

import attrs

from overstory._checks import at_least, optional_positive

__all__ = ["SYNCHRONOUS", "Config", "Synchronous", "default_state_dir", "is_loopback"]

DEFAULT_PORT = 8177
#: Seconds a finished goal stays in the journal by default: a week.
DEFAULT_RETENTION = 7 * 86400.0
#: Bytes of ``traces.jsonl`` before it is rotated to ``traces.jsonl.1`` (``--trace``).
DEFAULT_TRACE_LIMIT = 64 * 2**20

Synchronous = Literal["normal", "full"]
#: How the journal may commit (see :mod:`overstory.daemon._journal`).
SYNCHRONOUS: tuple[Synchronous, ...] = ("normal", "full")


def default_state_dir() -> Path:
    """``$OVERSTORY_STATE_DIR``, else ``$XDG_STATE_HOME/overstory``, else
    ``~/.local/state/overstory``."""
    if explicit := os.environ.get("OVERSTORY_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "overstory"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"Config.port must be an integer from 0 to 65535, got {value!r}")


def _synchronous(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in SYNCHRONOUS:
        raise ValueError(
            f"Config.synchronous must be one of {', '.join(SYNCHRONOUS)}, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Config:
    """How ``overstory serve`` runs a tree.

    ``state_dir`` holds the journal (``journal.sqlite3``), the admin token (``token``)
    and, while the daemon runs, ``daemon.json`` (its URL and pid). ``max_concurrent``
    bounds goals running at once; up to ``max_queue`` more wait (then submissions get
    429). On SIGTERM or SIGINT running goals get ``grace`` seconds to finish. Request
    bodies over ``max_body`` bytes get 413. ``tokens_file`` adds per-role tokens and is
    required to bind a non-loopback ``host``. ``port=0`` picks a free port. ``trace``
    records every span in ``state_dir/traces.jsonl`` (``overstory trace ID`` draws a
    goal's); otherwise spans go where the standard ``OTEL_*`` variables say, if anywhere.
    Once ``traces.jsonl`` reaches ``trace_limit`` bytes it becomes ``traces.jsonl.1``
    (replacing the previous one), so at most about twice that stays on disk.
    ``synchronous`` is how the journal commits: ``"normal"`` survives the process being
    killed, ``"full"`` also power loss, at a lower rate (see
    :mod:`overstory.daemon._journal`). A goal that ended more than ``retention`` seconds
    ago is deleted from the journal with its checkpoints, reviews and audit events
    (``None``: kept forever; see :mod:`overstory.daemon._retention`).
    """

    state_dir: Path = attrs.field(factory=default_state_dir, converter=Path)
    host: str = "127.0.0.1"
    port: int = attrs.field(default=DEFAULT_PORT, validator=_port)
    max_concurrent: int = attrs.field(default=8, validator=at_least(1, whole=True))
    max_queue: int = attrs.field(default=1000, validator=at_least(0, whole=True))
    grace: float = attrs.field(default=30.0, validator=at_least(0))
    max_body: int = attrs.field(default=1_048_576, validator=at_least(1024, whole=True))
    tokens_file: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    trace: bool = False
    synchronous: Synchronous = attrs.field(default="normal", validator=_synchronous)
    retention: float | None = attrs.field(default=DEFAULT_RETENTION, validator=optional_positive())
    trace_limit: int = attrs.field(
        default=DEFAULT_TRACE_LIMIT, validator=at_least(1024, whole=True)
    )

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite3"

    @property
    def trace_path(self) -> Path:
        """The spans file of ``--trace``; the one before it is ``traces.jsonl.1``."""
        return self.state_dir / "traces.jsonl"
