"""End to end over real OTLP: spans exported over HTTP and gRPC to receivers that run as
separate processes on loopback (oteltap, and tests/otlp_receiver.py, which also prints
the resource), checked for the three layer services, the parent links and the events."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from telemetry_helpers import NO_WAIT

import overstory as ov

WAIT = 20.0  # seconds before a receiver that does not answer fails the test


class Receiver:
    """A receiver subprocess whose stdout lines are collected by a thread."""

    def __init__(self, command: list[str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, predicate: Callable[[str], bool]) -> str:
        """Block (in a fixture, outside trio) until a line matches; fail after WAIT s."""
        event = threading.Event()
        for _ in range(int(WAIT / 0.05)):
            for line in list(self.lines):
                if predicate(line):
                    return line
            if self.process.poll() is not None:
                pytest.fail(f"receiver exited with {self.process.returncode}: {self.lines}")
            event.wait(0.05)
        pytest.fail(f"receiver not ready after {WAIT} s: {self.lines}")

    async def spans(
        self, parse: Callable[[str], dict[str, Any] | None], count: int
    ) -> list[dict[str, Any]]:
        """Wait (trio) until ``count`` spans have arrived; fail after WAIT s."""
        with trio.move_on_after(WAIT):
            while True:
                spans = [s for s in map(parse, list(self.lines)) if s is not None]
                if len(spans) >= count:
                    return spans
                await trio.sleep(0.05)
        pytest.fail(f"{count} spans expected, received: {self.lines}")

    def stop(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.terminate()
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        finally:
            if self.process.poll() is None:  # pragma: no cover
                self.process.kill()
            if self.process.stdout is not None:
                self.process.stdout.close()


@pytest.fixture
def own_receiver() -> Iterator[tuple[Receiver, dict[str, int]]]:
    receiver = Receiver([sys.executable, str(Path(__file__).with_name("otlp_receiver.py"))])
    try:
        ports = {}
        for transport in ("grpc", "http"):
            line = receiver.wait_line(lambda text, t=transport: text.startswith(f"{t} "))
            ports[transport] = int(line.split()[1])
        yield receiver, ports
    finally:
        receiver.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def oteltap() -> Iterator[tuple[Receiver, int]]:
    port = _free_port()
    receiver = Receiver([sys.executable, "-m", "oteltap", "--port", str(port)])
    try:
        receiver.wait_line(lambda text: text.startswith("Listening"))
        yield receiver, port
    finally:
        receiver.stop()


def tree() -> ov.Tree:
    @ov.leaf(description="Looks leads up")
    async def crm(task: ov.Task, ctx: ov.Context) -> str:
        if ctx.attempt == 1:
            raise ValueError("crm down")
        return "lead"

    return ov.Tree(
        "e2e",
        ov.Strategic(
            "director",
            children=[ov.Tactical("sales", children=[crm], retry=ov.Retry(backoff=NO_WAIT))],
        ),
    )


NAMES = {
    "invoke_workflow e2e",
    "invoke_agent director",
    "invoke_agent sales",
    "invoke_agent crm",
}


async def export_one_goal(endpoint: str, protocol: str) -> ov.Outcome:
    telemetry = ov.telemetry.configure(
        endpoint=endpoint, protocol=protocol, service_name="e2e", install=False
    )
    try:
        return await tree().run("qualify ACME", instrumentation=telemetry.instrumentation)
    finally:
        await telemetry.aclose()


def _own(line: str) -> dict[str, Any] | None:
    return json.loads(line) if line.startswith("{") else None


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_layers_links_and_events_arrive_over_otlp(
    own_receiver: tuple[Receiver, dict[str, int]], protocol: str
) -> None:
    """Over OTLP/gRPC and OTLP/HTTP a real receiver gets the goal's 5 spans in one trace,
    from the three layer services of one namespace, correctly parented, with the retry
    event on the tactical span and the second attempt linked to the first."""
    receiver, ports = own_receiver
    port = ports["grpc" if protocol == "grpc" else "http"]
    outcome = await export_one_goal(f"http://127.0.0.1:{port}", protocol)
    assert outcome.ok
    spans = await receiver.spans(_own, 5)
    assert len(spans) == 5
    assert {s["transport"] for s in spans} == {"grpc" if protocol == "grpc" else "http"}
    assert {s["name"] for s in spans} == NAMES
    assert len({s["trace_id"] for s in spans}) == 1
    assert {s["service"] for s in spans} == {"e2e.strategic", "e2e.tactical", "e2e.leaf"}
    assert {s["namespace"] for s in spans} == {"e2e"}
    by_id = {s["span_id"]: s for s in spans}
    by_name = {s["name"]: s for s in spans}
    assert by_name["invoke_workflow e2e"]["parent_id"] is None
    expected_parent = {
        "invoke_agent director": "invoke_workflow e2e",
        "invoke_agent sales": "invoke_agent director",
        "invoke_agent crm": "invoke_agent sales",
    }
    for span in spans:
        if span["parent_id"] is not None:
            assert by_id[span["parent_id"]]["name"] == expected_parent[span["name"]]
    sales = by_name["invoke_agent sales"]
    (retry,) = [e for e in sales["events"] if e["name"] == "retry"]
    assert retry["attributes"]["error.type"] == "ValueError"
    assert retry["attributes"]["overstory.attempt"] == 1
    first, second = sorted(
        (s for s in spans if s["name"] == "invoke_agent crm"),
        key=lambda s: s["attributes"]["overstory.attempt"],
    )
    assert first["status"] == 2  # STATUS_CODE_ERROR
    assert second["links"] == [first["span_id"]]
    assert outcome.goal_id == by_name["invoke_workflow e2e"]["attributes"]["gen_ai.conversation.id"]


def _oteltap(line: str) -> dict[str, Any] | None:
    # oteltap prints spans, metrics and logs, one JSON object a line; spans have a traceId.
    record = json.loads(line) if line.startswith("{") else None
    return record if record is not None and "traceId" in record else None


async def test_oteltap_receives_parented_spans_and_events_over_http(
    oteltap: tuple[Receiver, int],
) -> None:
    """oteltap, a third-party OTLP/HTTP receiver, gets the goal's spans with the right
    parent links and the supervision events."""
    receiver, port = oteltap
    outcome = await export_one_goal(f"http://127.0.0.1:{port}", "http/protobuf")
    assert outcome.ok
    spans = await receiver.spans(_oteltap, 5)
    assert {s["name"] for s in spans} == NAMES
    assert len({s["traceId"] for s in spans}) == 1
    by_id = {s["spanId"]: s for s in spans}
    roots = [s for s in spans if not s["parentSpanId"]]
    assert [s["name"] for s in roots] == ["invoke_workflow e2e"]
    for span in spans:
        if span["parentSpanId"]:
            assert span["parentSpanId"] in by_id
    sales = next(s for s in spans if s["name"] == "invoke_agent sales")
    assert [e["name"] for e in sales["events"]] == ["retry"]
