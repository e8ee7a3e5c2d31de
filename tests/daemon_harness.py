"""Start the real daemon in a subprocess for tests, and always clean it up.

``Daemon(tmp_path, "tests/daemon_trees.py:slow").start()`` runs ``overstory serve`` on
an ephemeral loopback port with its own state directory and waits (bounded) until it
answers; ``stop()`` sends SIGTERM and waits, ``kill()`` sends SIGKILL. Every wait has a
deadline; the context manager kills whatever is left, even when the test failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
TREES = "tests/daemon_trees.py"
START_TIMEOUT = 60.0


def overstory(*args: str) -> list[str]:
    """The command line of ``overstory ARGS`` with this interpreter."""
    return [sys.executable, "-m", "overstory", *args]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 20 ms until it returns something truthy; fail after
    ``timeout`` seconds, saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


class Daemon:
    """One ``overstory serve`` subprocess (see the module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        tree: str = "slow",
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.target = f"{TREES}:{tree}"
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = state_dir / "daemon.log"

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    def start(self) -> Daemon:
        """Start the daemon and wait until its API answers."""
        assert self.process is None or self.process.poll() is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        info = self.state_dir / "daemon.json"
        info.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                overstory(
                    "serve",
                    self.target,
                    "--port",
                    "0",
                    "--state-dir",
                    str(self.state_dir),
                    *self.args,
                ),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        pid = self.process.pid

        def started() -> str | None:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the daemon exited at start:\n{self.output()}")
            try:
                data = json.loads(info.read_text())
            except (OSError, ValueError):
                return None
            return str(data["url"]) if data.get("pid") == pid else None

        self.url = wait_for(started, timeout=START_TIMEOUT, what="the daemon to start")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client for the API, with ``token`` (default: the admin token)."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=10.0,
        )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit; return its exit status."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the daemon did not exit within {timeout:g} s:\n{self.output()}"
            ) from None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (if still running) and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def cli(self, *args: str, token: str | None = None, timeout: float = 30.0) -> Result:
        """Run ``overstory ARGS`` against this daemon."""
        extra = ["--token", token] if token is not None else []
        return run_cli(*args, "--state-dir", str(self.state_dir), *extra, timeout=timeout)


class Result:
    def __init__(self, completed: subprocess.CompletedProcess[str]) -> None:
        self.code = completed.returncode
        self.out = completed.stdout
        self.err = completed.stderr

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


def run_cli(*args: str, timeout: float = 30.0, env: dict[str, str] | None = None) -> Result:
    """Run ``overstory ARGS`` in a subprocess and capture what it says."""
    completed = subprocess.run(
        overstory(*args),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(completed)


def wait_status(client: httpx.Client, goal_id: str, statuses: set[str], timeout: float) -> dict:
    """Poll the goal until its status is one of ``statuses``; return it."""

    def check() -> dict[str, Any] | None:
        goal: dict[str, Any] = client.get(f"/v1/goals/{goal_id}").json()
        return goal if goal["status"] in statuses else None

    return wait_for(check, timeout=timeout, what=f"goal {goal_id} to become {statuses}")
