"""Roles on every endpoint: who may call what, checked against a real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daemon_harness import Daemon, run_cli

from overstory.daemon._api import openapi

TOKENS = {
    "submit": "submit-token-0123456789",
    "review": "review-token-0123456789",
    "admin": "admin-token-01234567890",
}

#: Who may call each endpoint: "public" (no token), "any" (any role), or one role
#: (admin may always). A new endpoint fails test_the_matrix_covers_every_endpoint
#: until it is added here.
MATRIX = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/openapi.json"): "any",
    ("GET", "/metrics"): "any",
    ("POST", "/v1/goals"): "submit",
    ("GET", "/v1/goals"): "any",
    ("GET", "/v1/goals/{goal_id}"): "any",
    ("POST", "/v1/goals/{goal_id}/cancel"): "submit",
    ("GET", "/v1/goals/{goal_id}/events"): "any",
    ("GET", "/v1/goals/{goal_id}/trace"): "any",
    ("GET", "/v1/reviews"): "any",
    ("GET", "/v1/reviews/{review_id}"): "any",
    ("POST", "/v1/reviews/{review_id}/approve"): "review",
    ("POST", "/v1/reviews/{review_id}/reject"): "review",
    ("POST", "/v1/reviews/{review_id}/edit"): "review",
    ("GET", "/v1/tree"): "any",
    ("GET", "/v1/audit"): "admin",
}

BODIES = {
    "/v1/goals": {"goal": "g"},
    "/v1/reviews/{review_id}/reject": {"reason": "no"},
    "/v1/reviews/{review_id}/edit": {"output": 1},
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    state = tmp_path_factory.mktemp("roles")
    tokens = state / "tokens.toml"
    tokens.write_text("".join(f'{role} = "{token}"\n' for role, token in TOKENS.items()))
    with Daemon(state / "state", "trivial", args=["--tokens", str(tokens)]) as running:
        yield running


def test_the_matrix_covers_every_endpoint() -> None:
    """Every endpoint in the OpenAPI document has a row in MATRIX, and no row is stale."""
    documented = {
        (method.upper(), path)
        for path, operations in openapi()["paths"].items()
        for method in operations
    }
    assert documented == set(MATRIX)


def _call(http: httpx.Client, method: str, path: str) -> httpx.Response:
    url = path.replace("{goal_id}", "no-such-goal").replace("{review_id}", "424242")
    params = {"follow": "false"} if url.endswith("/events") else None
    return http.request(method, url, json=BODIES.get(path), params=params)


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_each_role_gets_exactly_the_access_the_matrix_gives(
    daemon: Daemon, method: str, path: str
) -> None:
    """No token or an unknown one: 401; a role without access: 403; with access: neither."""
    needed = MATRIX[method, path]
    callers: dict[str, str | None] = {"none": None, "unknown": "not-a-token-0123456789"}
    callers.update(TOKENS)
    for caller, token in callers.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=daemon.url, headers=headers, timeout=10) as http:
            status = _call(http, method, path).status_code
        if needed == "public":
            allowed = True
        elif token is None or caller == "unknown":
            assert status == 401, (caller, status)
            continue
        else:
            allowed = needed == "any" or caller in (needed, "admin")
        if allowed:
            assert status not in (401, 403), (caller, status)
            assert status < 500, (caller, status)
        else:
            assert status == 403, (caller, status)


def test_a_reviewer_cannot_submit_and_a_submitter_cannot_approve(daemon: Daemon) -> None:
    """The CLI reports a refused role in one paragraph and exits 2."""
    refused = daemon.cli("submit", "g", token=TOKENS["review"])
    assert refused.code == 2
    assert "a review token may not do this; it needs submit or admin" in refused.err
    assert "Traceback" not in refused.err
    approve = daemon.cli("approve", "1", token=TOKENS["submit"])
    assert approve.code == 2
    assert "a submit token may not do this; it needs review or admin" in approve.err


def test_submissions_record_the_submitting_role(daemon: Daemon) -> None:
    """A goal remembers which role submitted it, and the audit log says so."""
    with daemon.client(TOKENS["submit"]) as http:
        goal = http.post("/v1/goals", json={"goal": "g"}).json()
    assert goal["submitted_by"] == "submit"
    with daemon.client(TOKENS["admin"]) as http:
        events = http.get("/v1/audit", params={"goal_id": goal["id"]}).json()["events"]
    accepted = events[0]
    assert (accepted["kind"], accepted["actor"]) == ("goal.accepted", "submit")
    assert len(accepted["data"]["token"]) == 8


def test_a_non_loopback_address_without_tokens_is_refused(tmp_path: Path) -> None:
    """serve --host 0.0.0.0 without --tokens exits 2 before binding anything."""
    result = run_cli(
        "serve", "tests/daemon_trees.py:trivial", "--host", "0.0.0.0", "--state-dir", str(tmp_path)
    )
    assert result.code == 2
    assert "refusing to serve on 0.0.0.0" in result.err
    assert not (tmp_path / "journal.sqlite3").exists()


def test_the_generated_token_file_is_private(daemon: Daemon) -> None:
    """The token written on first start is readable by its owner only (mode 0600)."""
    assert (daemon.state_dir / "token").stat().st_mode & 0o777 == 0o600
