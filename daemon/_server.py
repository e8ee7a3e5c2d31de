"""``serve``: the journal, the tree, the dispatcher and the HTTP server under one nursery.

Shutdown, in order: intake stops (submit answers 503, /readyz 503); running goals get
``grace`` seconds; the rest are cancelled and stay resumable in the journal; open event
streams are ended; the HTTP server stops; the tree's agents stop; the journal commits
what is queued and closes. A second SIGTERM or SIGINT cancels everything at once; every
accepted goal is already committed, so nothing accepted is lost either way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from overstory._errors import ConfigurationError
from overstory.daemon._auth import Tokens
from overstory.daemon._config import Config, is_loopback
from overstory.daemon._journal import Journal
from overstory.daemon._lock import StateLock
from overstory.daemon._service import Daemon
from overstory.hierarchy._tree import Tree
from overstory.telemetry._hooks import current_instrumentation

if TYPE_CHECKING:
    from overstory.telemetry import Telemetry

__all__ = ["DAEMON_FILE", "serve"]

logger = logging.getLogger("overstory.daemon")

#: Written into the state directory while the daemon serves: its URL and pid.
DAEMON_FILE = "daemon.json"


async def serve(
    tree: Tree,
    config: Config,
    *,
    handle_signals: bool = False,
    stop: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Serve ``tree`` until stopped; return the process exit status.

    ``task_status.started`` gets the URL once the API answers. The daemon stops
    gracefully when ``stop`` is set or, with ``handle_signals``, on the first SIGTERM or
    SIGINT (exit status 0); a second signal cancels everything at once (128 + signal
    number). Raises :class:`ConfigurationError` for a non-loopback host without
    configured tokens or a state directory another daemon serves from (see
    :class:`~overstory.daemon._lock.StateLock`), and what the journal or the tree raise
    on start.
    """
    if not is_loopback(config.host) and config.tokens_file is None:
        raise ConfigurationError(
            f"refusing to serve on {config.host}, which is not a loopback address, with only "
            "the generated token: configure tokens with --tokens FILE (see `overstory serve "
            "--help`), or bind 127.0.0.1"
        )
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = StateLock(config.state_dir)
    lock.acquire()
    try:
        return await _serve_locked(tree, config, handle_signals, stop, task_status)
    finally:
        lock.release()


async def _serve_locked(
    tree: Tree,
    config: Config,
    handle_signals: bool,
    stop: trio.Event | None,
    task_status: trio.TaskStatus[str],
) -> int:
    tokens = Tokens.load(config.state_dir, config.tokens_file)
    journal = await trio.to_thread.run_sync(
        partial(Journal.open, config.journal_path, tree=tree.name, synchronous=config.synchronous)
    )
    daemon = Daemon(tree=tree.name, journal=journal, config=config)
    telemetry = _telemetry(config)
    daemon.telemetry = telemetry
    stop = stop if stop is not None else trio.Event()
    forced: list[int] = []
    streams: set[trio.CancelScope] = set()
    try:
        async with trio.open_nursery() as root:
            await root.start(journal.run)
            signals = trio.CancelScope()
            if handle_signals:
                await root.start(_on_signals, signals, stop, root.cancel_scope, forced)
            try:
                async with tree.running(
                    reviewer=daemon.review,
                    on_event=daemon.on_event,
                    instrumentation=daemon.instrumentation(current_instrumentation()),
                ) as runner:
                    await _serve_api(daemon, runner, tokens, config, streams, stop, task_status)
            finally:
                signals.cancel()
                journal.stop()
    finally:
        await trio.to_thread.run_sync(journal.close)
        if telemetry is not None:
            await telemetry.aclose()
        _remove_daemon_file(config.state_dir)
    if forced:
        logger.warning("stopped at once by a second signal")
        return 128 + forced[0]
    logger.info("stopped")
    return 0


async def _serve_api(
    daemon: Daemon,
    runner: Any,
    tokens: Tokens,
    config: Config,
    streams: set[trio.CancelScope],
    stop: trio.Event,
    task_status: trio.TaskStatus[str],
) -> None:
    # Imported here: client commands import this package and need none of the server.
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve as hypercorn_serve

    from overstory.daemon._api import create_app

    app = create_app(daemon, tokens, max_body=config.max_body, streams=streams)
    http = HypercornConfig()
    host = f"[{config.host.strip('[]')}]" if ":" in config.host else config.host
    http.bind = [f"{host}:{config.port}"]
    http.graceful_timeout = 2.0
    http.keep_alive_timeout = 30.0
    http.accesslog = None
    http.errorlog = logger
    http_stop = trio.Event()
    daemon_done = trio.Event()

    async def run_daemon(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await daemon.run(runner, task_status=task_status)
        finally:
            daemon_done.set()

    async with trio.open_nursery() as services:
        await services.start(run_daemon)
        binds: list[str] = await services.start(
            partial(hypercorn_serve, app, http, shutdown_trigger=http_stop.wait)  # type: ignore[arg-type]
        )
        url = binds[0]
        _write_daemon_file(config.state_dir, url, daemon.tree)
        logger.info("serving tree %s on %s (state in %s)", daemon.tree, url, config.state_dir)
        task_status.started(url)
        await stop.wait()
        logger.info("stopping: no new goals; running goals get %g s", config.grace)
        daemon.stop()
        await daemon_done.wait()
        for scope in list(streams):
            scope.cancel()
        http_stop.set()


async def _on_signals(
    signals: trio.CancelScope,
    stop: trio.Event,
    everything: trio.CancelScope,
    forced: list[int],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with signals, trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
        task_status.started()
        async for signum in received:
            if not stop.is_set():
                logger.info("received %s", signal.Signals(signum).name)
                stop.set()
            else:
                forced.append(signum)
                everything.cancel()
                return


#: Any of these set: spans are exported as OpenTelemetry's variables say (as ``run`` does).
_OTEL_EXPORT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


def _telemetry(config: Config) -> Telemetry | None:
    """Record spans in the state directory (``--trace``), or export them as the OTEL_*
    variables say; ``None`` when neither is asked for (no SDK pipeline at all)."""
    from overstory.telemetry import JsonLinesExporter, configure

    if config.trace:
        return configure(
            exporter=JsonLinesExporter(config.trace_path, max_bytes=config.trace_limit)
        )
    if any(os.environ.get(name, "").strip() for name in _OTEL_EXPORT_VARIABLES):
        return configure()
    return None


def _write_daemon_file(state_dir: Path, url: str, tree: str) -> None:
    path = state_dir / DAEMON_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        json.dumps({"url": url, "pid": os.getpid(), "tree": tree, "started_at": time.time()})
    )
    temporary.replace(path)


def _remove_daemon_file(state_dir: Path) -> None:
    path = state_dir / DAEMON_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
