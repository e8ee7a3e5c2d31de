"""Fuzzing the API from its own OpenAPI document: no input makes the daemon answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from daemon_harness import Daemon
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from overstory.daemon._api import openapi


def _bounded(node: Any) -> Any:
    """The document with string lengths capped at 256: generating 64 KiB strings costs
    hypothesis seconds per example, and the length limits have tests of their own."""
    if isinstance(node, dict):
        return {
            key: min(value, 256) if key == "maxLength" else _bounded(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_bounded(item) for item in node]
    return node


schema = schemathesis.openapi.from_dict(_bounded(openapi()))
schema.config.generation.update(max_examples=20)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The review tree (goals park, so fuzzed submissions pile up harmlessly), a small
    body limit, and a short queue (so 429 is exercised too). Still healthy afterwards."""
    state = tmp_path_factory.mktemp("fuzz") / "state"
    args = ["--max-body", "8192", "--max-queue", "50", "--max-concurrent", "20"]
    with Daemon(state, "reviewed", args=args) as running:
        with running.client() as http:  # goals and reviews for the fuzzer to find
            for number in range(3):
                http.post("/v1/goals", json={"goal": f"seed {number}"})
        yield running
        with httpx.Client(base_url=running.url) as anonymous:
            assert anonymous.get("/healthz").status_code == 200
            assert anonymous.get("/readyz").status_code == 200
        assert running.process is not None
        assert running.process.poll() is None


@pytest.fixture
def session(daemon: Daemon) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {daemon.token}"
        yield http


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_daemon_fail(
    case: schemathesis.Case, daemon: Daemon, session: requests.Session
) -> None:
    """Every operation, with generated valid and invalid input, is answered below 500."""
    response = case.call(base_url=daemon.url, session=session, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
