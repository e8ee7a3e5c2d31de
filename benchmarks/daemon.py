"""W6 daemon: durable accepts per second and their latency over loopback, and end-to-end
goals per second for a trivial tree.

    python -m benchmarks.daemon overstory [--floor 3000] [--accepts 6000] [--goals 2000]
    python -m benchmarks.daemon [--floor 3000] [--accepts 6000] [--goals 2000] [--connections 8]
    python -m benchmarks.daemon overstory --synchronous full   # fsync every commit

Each measurement below starts ``overstory serve`` in a subprocess with a fresh state
directory. With the system ``overstory`` (what ``python -m benchmarks`` runs as W6) the
program prints one JSON line with every figure (``accepts_per_s``, ``accept_p50_ms``,
``accept_p99_ms``, ``goals_per_s``, ``floor_per_s``, ...) and fails unless every
submission was accepted and every goal succeeded; without it, one JSON line per
measurement (``--floor 0`` skips the first):

``http_floor``
    ``GET /healthz``: no token, no journal. What the HTTP stack (hypercorn's trio worker,
    Starlette) costs per request on this machine: the ceiling for everything else.
``durable_accepts``
    ``POST /v1/goals`` to ``benchmarks/trees.py:blocked`` with one goal slot, so accepted
    goals wait in the queue: parse, validate, commit to the journal (WAL; the daemon's
    default ``--synchronous normal``, which survives kill -9 but not power loss, unless
    ``--synchronous full`` is given), answer 202. Latency is measured per request by the
    client.
``end_to_end_goals``
    ``POST /v1/goals`` to ``benchmarks/trees.py:trivial`` with 64 slots, until every goal
    has succeeded: accept, queue, run, checkpoint, finish, all journalled.

The load comes from ``--connections`` keep-alive HTTP/1.1 connections driven by one trio
task each, with requests pre-encoded and responses read by Content-Length: a load
generator that costs about a quarter of what it measures, so that on two cores the
server, not the client, is what is measured. ``server_cpu_ms`` is the daemon's CPU time
per request (Linux ``/proc``), which depends less on what else the machine runs than
requests per second do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import emit

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("overstory",)


class Server:
    """``overstory serve benchmarks/trees.py:TREE`` in a subprocess."""

    def __init__(self, state: Path, tree: str, *args: str) -> None:
        self.state = state
        # The daemon's stderr goes to a file, so a failed start can say why.
        self.log = state.parent / f"{state.name}.stderr"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "overstory",
                "serve",
                f"benchmarks/trees.py:{tree}",
                "--port",
                "0",
                "--state-dir",
                str(state),
                "--grace",
                "0",
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        # Generous: importing the whole stack takes seconds on a loaded 2-core machine.
        deadline = time.monotonic() + 90
        while True:
            try:
                info = json.loads((state / "daemon.json").read_text())
                if info["pid"] == self.process.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                why = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise SystemExit(
                    f"the daemon did not start (exit {self.process.returncode}):\n{why}"
                )
            time.sleep(0.05)
        self.host, port = info["url"].removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.token = (state / "token").read_text().strip()

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the daemon so far (0 where /proc is missing)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _exchange(
    stream: trio.SocketStream, request: bytes, buffer: bytearray
) -> tuple[int, bytes]:
    """Send one request, read one response; returns (status, body)."""
    await stream.send_all(request)
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).split(b"\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head
                if line.lower().startswith(b"content-length:")
            )
            if len(buffer) >= end + 4 + length:
                body = bytes(buffer[end + 4 : end + 4 + length])
                del buffer[: end + 4 + length]
                return int(head[0].split()[1]), body
        more = await stream.receive_some(65536)
        if not more:
            raise ConnectionError("the server closed the connection")
        buffer += more


async def _load(server: Server, requests: list[bytes], connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    todo = iter(requests)

    async def connection() -> None:
        stream = await trio.open_tcp_stream(server.host, server.port)
        buffer = bytearray()
        for request in todo:
            began = time.perf_counter()
            try:
                status, _ = await _exchange(stream, request, buffer)
            except ConnectionError:  # hypercorn recycles a connection after 1,000 requests
                await stream.aclose()
                stream = await trio.open_tcp_stream(server.host, server.port)
                buffer.clear()
                status, _ = await _exchange(stream, request, buffer)
            latencies.append(time.perf_counter() - began)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        await stream.aclose()

    cpu = server.cpu_seconds()
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(connection)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(requests),
        "connections": connections,
        "seconds": round(elapsed, 3),
        "per_second": round(len(requests) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "server_cpu_ms": round((server.cpu_seconds() - cpu) / len(requests) * 1000, 3),
        "statuses": statuses,
    }


async def _fetch(server: Server, path: str) -> bytes:
    """``GET path`` on a connection of its own; the body of its 200 answer."""
    stream = await trio.open_tcp_stream(server.host, server.port)
    try:
        status, body = await _exchange(stream, server.request("GET", path), bytearray())
    finally:
        await stream.aclose()
    assert status == 200, (status, body[:200])
    return body


async def _get(server: Server, path: str) -> Any:
    return json.loads(await _fetch(server, path))


async def _wait_idle(server: Server) -> None:
    """Return once the daemon has no goal queued or running."""
    while True:
        tree = await _get(server, "/v1/tree")
        if tree["goals_running"] == 0 and tree["goals_queued"] == 0:
            return
        await trio.sleep(0.02)


async def _end_to_end(server: Server, goals: int, connections: int) -> dict[str, Any]:
    requests = [
        server.request("POST", "/v1/goals", {"goal": "e2e", "input": n}) for n in range(goals)
    ]
    began = time.perf_counter()
    cpu = server.cpu_seconds()
    load = await _load(server, requests, connections)
    await _wait_idle(server)
    elapsed = time.perf_counter() - began
    succeeded = (await _get(server, "/v1/goals?status=succeeded&limit=500"))["goals"]
    return {
        "goals": goals,
        "connections": connections,
        "submit_seconds": load["seconds"],
        "seconds": round(elapsed, 3),
        "per_second": round(goals / elapsed, 1),
        "server_cpu_ms_per_goal": round((server.cpu_seconds() - cpu) / goals * 1000, 3),
        "statuses": load["statuses"],
        "all_succeeded": len(succeeded) == min(goals, 500),
    }


def measure_floor(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``GET /healthz`` ``--floor`` times: what the HTTP stack alone costs."""
    server = Server(directory / "floor", "blocked")
    try:
        probes = [server.request("GET", "/healthz")] * args.floor
        result: dict[str, Any] = trio.run(_load, server, probes, args.connections)
    finally:
        server.stop()
    return result


def measure_accepts(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``POST /v1/goals`` ``--accepts`` times to a tree whose one slot is taken forever."""
    queue = str(args.accepts + 10)
    server = Server(
        directory / "accepts",
        "blocked",
        "--max-concurrent",
        "1",
        "--max-queue",
        queue,
        "--synchronous",
        args.synchronous,
    )
    try:
        requests = [
            server.request("POST", "/v1/goals", {"goal": "benchmark", "input": n})
            for n in range(args.accepts)
        ]
        result: dict[str, Any] = trio.run(_load, server, requests, args.connections)
    finally:
        server.stop()
    return result


def measure_goals(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``--goals`` goals to a one-leaf tree, until every one has finished."""
    queue = str(args.goals + 10)
    server = Server(
        directory / "goals",
        "trivial",
        "--max-concurrent",
        "64",
        "--max-queue",
        queue,
        "--synchronous",
        args.synchronous,
    )
    try:
        result: dict[str, Any] = trio.run(_end_to_end, server, args.goals, args.connections)
    finally:
        server.stop()
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.daemon", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument(
        "system",
        nargs="?",
        choices=SYSTEMS,
        help="print one JSON line with every figure (the suite's W6); "
        "without it, print one line per measurement",
    )
    p.add_argument("--floor", type=int, default=3000, help="GET /healthz requests (0: skip)")
    p.add_argument("--accepts", type=int, default=6000, help="submissions to time")
    p.add_argument("--goals", type=int, default=2000, help="goals to run end to end")
    p.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    p.add_argument(
        "--synchronous",
        choices=("normal", "full"),
        default="normal",
        help="the daemon's journal commit mode (see docs/daemon.md)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        floor = measure_floor(directory, args) if args.floor > 0 else None
        if args.system is None and floor is not None:
            print(json.dumps({"measure": "http_floor", **floor, **machine}), flush=True)
        accepts = measure_accepts(directory, args)
        if args.system is None:
            print(json.dumps({"measure": "durable_accepts", **accepts, **machine}), flush=True)
        goals = measure_goals(directory, args)
        if args.system is None:
            print(json.dumps({"measure": "end_to_end_goals", **goals, **machine}), flush=True)
            return
    # The suite's line: a figure is only worth reporting if every request did its job.
    if accepts["statuses"] != {"202": args.accepts}:
        raise SystemExit(f"not every submission was accepted: {accepts['statuses']}")
    if goals["statuses"] != {"202": args.goals} or not goals["all_succeeded"]:
        raise SystemExit(f"not every goal succeeded: {goals}")
    figures: dict[str, Any] = {}
    if floor is not None:
        figures.update(
            floor_per_s=floor["per_second"],
            floor_p50_ms=floor["p50_ms"],
            floor_p99_ms=floor["p99_ms"],
            floor_server_cpu_ms=floor["server_cpu_ms"],
        )
    emit(
        "W6",
        args.system,
        connections=args.connections,
        synchronous=args.synchronous,
        accepts=args.accepts,
        accepts_per_s=accepts["per_second"],
        accept_p50_ms=accepts["p50_ms"],
        accept_p99_ms=accepts["p99_ms"],
        accept_max_ms=accepts["max_ms"],
        accept_server_cpu_ms=accepts["server_cpu_ms"],
        goals=args.goals,
        goals_per_s=goals["per_second"],
        goal_server_cpu_ms=goals["server_cpu_ms_per_goal"],
        **figures,
    )


if __name__ == "__main__":
    main()
