"""The HTTP API of a real daemon, driven over loopback: each test pins one behaviour."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daemon_harness import Daemon, wait_for, wait_status

TOKENS = {
    "submit": "submit-token-0123456789",
    "review": "review-token-0123456789",
    "admin": "admin-token-01234567890",
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon serving the review tree (goals park for review, so 200 may run at once),
    with a token per role and a 4 KiB body limit."""
    state = tmp_path_factory.mktemp("http")
    tokens = state / "tokens.toml"
    tokens.write_text("".join(f'{role} = ["{token}"]\n' for role, token in TOKENS.items()))
    with Daemon(
        state / "state",
        "reviewed",
        args=["--tokens", str(tokens), "--max-body", "4096", "--max-concurrent", "200"],
    ) as running:
        yield running


@pytest.fixture
def http(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


def _submit(http: httpx.Client, **body: object) -> dict[str, object]:
    response = http.post("/v1/goals", json={"goal": "write about trees", **body})
    assert response.status_code == 202, response.text
    data: dict[str, object] = response.json()
    return data


def test_submit_answers_202_with_the_goal_and_its_location(http: httpx.Client) -> None:
    """A valid submission is answered 202 with the queued goal and a Location header."""
    response = http.post("/v1/goals", json={"goal": "g", "input": {"n": 1}, "priority": 5})
    assert response.status_code == 202
    goal = response.json()
    assert goal["goal"] == "g"
    assert goal["priority"] == 5
    assert goal["status"] in ("queued", "running")
    assert goal["submitted_by"] == "admin"
    assert response.headers["location"] == f"/v1/goals/{goal['id']}"


def test_a_key_reused_with_true_for_1_is_a_conflict(http: httpx.Client) -> None:
    """Inputs are compared as JSON: true is not 1 (Python's == says they are), though key
    order does not matter."""
    first = _submit(http, input={"x": 1, "y": [1, 2]}, idempotency_key="typed")
    reordered = http.post(
        "/v1/goals",
        json={
            "goal": "write about trees",
            "input": {"y": [1, 2], "x": 1},
            "idempotency_key": "typed",
        },
    )
    assert (reordered.status_code, reordered.json()["id"]) == (200, first["id"])
    response = http.post(
        "/v1/goals",
        json={
            "goal": "write about trees",
            "input": {"x": True, "y": [1, 2]},
            "idempotency_key": "typed",
        },
    )
    assert response.status_code == 409


def test_same_idempotency_key_returns_the_first_goal(http: httpx.Client) -> None:
    """Submitting again with the same key answers 200 with the first goal, not a new one."""
    first = _submit(http, idempotency_key="once-only")
    again = http.post(
        "/v1/goals", json={"goal": "write about trees", "idempotency_key": "once-only"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


def test_reusing_a_key_for_another_goal_is_a_conflict(http: httpx.Client) -> None:
    """A key reused with a different goal answers 409 naming idempotency_key."""
    _submit(http, idempotency_key="mine")
    response = http.post("/v1/goals", json={"goal": "something else", "idempotency_key": "mine"})
    assert response.status_code == 409
    assert response.json()["problems"][0]["field"] == "idempotency_key"


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({}, "goal", "required field missing"),
        ({"goal": ""}, "goal", "must not be empty or blank"),
        ({"goal": 7}, "goal", "expected a string, got a number"),
        ({"goal": "g", "priority": "high"}, "priority", "expected an integer, got a string"),
        ({"goal": "g", "priority": 1001}, "priority", "must be at least -1000 and at most 1000"),
        ({"goal": "g", "timeout": 0}, "timeout", "must be greater than 0"),
        ({"goal": "g", "timeout": True}, "timeout", "expected a number, got a boolean"),
        ({"goal": "g", "colour": "red"}, "colour", "unknown field"),
        ([], "", "expected an object, got an array"),
    ],
)
def test_an_invalid_body_is_a_422_naming_the_field(
    http: httpx.Client, body: object, field: str, problem: str
) -> None:
    """Each invalid submission is answered 422 with the field and the problem."""
    response = http.post("/v1/goals", json=body)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert any(p["field"] == field and p["problem"].startswith(problem) for p in problems), problems


@pytest.mark.parametrize(
    "raw", [b"{", b"\xff\xfe", b'{"goal": NaN}', b"[" * 4000, b'{"goal": "g", "input": 1e999}']
)
def test_malformed_json_is_a_400(http: httpx.Client, raw: bytes) -> None:
    """Text that is not strict JSON (including NaN and overflow) is answered 400, never 5xx."""
    response = http.post("/v1/goals", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.json()["error"] in ("invalid_json", "invalid_body")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"goal": "g\\ud800"}', "goal"),
        (b'{"goal": "g", "input": {"names": ["ok", "\\udfff"]}}', "input.names.1"),
        (b'{"goal": "g", "input": {"\\udc80": 1}}', "input.'\\udc80'"),
        (b'{"goal": "g", "idempotency_key": "\\ud83d"}', "idempotency_key"),
    ],
)
def test_a_string_that_is_not_unicode_text_is_a_422_naming_it(
    http: httpx.Client, raw: bytes, field: str
) -> None:
    """A lone surrogate escape anywhere in a body is answered 422 naming where it is, and
    nothing is accepted (a surrogate pair, one character, is fine)."""
    before = http.get("/v1/goals", params={"limit": 500}).json()["goals"]
    response = http.post("/v1/goals", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["problems"] == [
        {"field": field, "problem": response.json()["problems"][0]["problem"]}
    ]
    assert "lone surrogate" in response.json()["message"]
    assert http.get("/v1/goals", params={"limit": 500}).json()["goals"] == before
    pair = b'{"goal": "emoji \\ud83d\\ude00"}'
    accepted = http.post("/v1/goals", content=pair, headers={"content-type": "application/json"})
    assert (accepted.status_code, accepted.json()["goal"]) == (202, "emoji \U0001f600")


def test_deeply_nested_input_is_refused(http: httpx.Client) -> None:
    """Input nested deeper than 64 levels is answered 422."""
    nested: object = 1
    for _ in range(70):
        nested = [nested]
    response = http.post("/v1/goals", json={"goal": "g", "input": nested})
    assert response.status_code == 422


def test_a_body_over_the_limit_is_a_413(http: httpx.Client) -> None:
    """A body over --max-body is answered 413, whether or not it declares its length."""
    big = {"goal": "g", "input": "x" * 5000}
    assert http.post("/v1/goals", json=big).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield json.dumps(big).encode()

    assert http.post("/v1/goals", content=chunks()).status_code == 413


def test_unknown_paths_and_methods_answer_json_errors(http: httpx.Client) -> None:
    """404 and 405 come as JSON error bodies like every other error."""
    missing = http.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = http.delete("/v1/goals")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"
    # exact paths skip Starlette's router only for their own method
    assert http.head("/healthz").status_code == 200
    assert http.put("/healthz").status_code == 405
    assert http.get("/v1/goals/no-such-goal").status_code == 404
    assert http.get("/v1/reviews/99999999999999999999999").status_code == 404


@pytest.mark.parametrize("review_id", ["%C2%B2", "%D9%A3", "1" * 5000, "-1", "0", "+3"])
def test_a_review_id_that_is_not_an_ascii_number_is_a_404(
    http: httpx.Client, review_id: str
) -> None:
    """Superscript and Arabic-Indic digits, 5,000 digits, signs and zero name no review."""
    for response in (
        http.get(f"/v1/reviews/{review_id}"),
        http.post(f"/v1/reviews/{review_id}/approve"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"


def test_a_trailing_slash_is_an_unknown_path_not_a_redirect(http: httpx.Client) -> None:
    """/v1/goals/ is a 404 JSON error: no redirect built from the client's Host header."""
    for response in (
        http.get("/v1/goals/", headers={"host": "evil.example"}),
        http.post("/v1/goals/", json={"goal": "g"}),
    ):
        assert response.status_code == 404
        assert "location" not in response.headers
        assert response.json()["error"] == "not_found"


def test_a_client_that_leaves_mid_request_is_not_a_server_error(
    daemon: Daemon, http: httpx.Client
) -> None:
    """A client that disconnects before sending its whole body is counted as 499, not 500,
    and the daemon goes on serving."""

    def counted(code: str) -> int:
        text = http.get("/metrics").text
        found = re.search(
            rf'overstory_http_responses_total{{route="POST /v1/goals",code="{code}"}} (\d+)', text
        )
        return int(found.group(1)) if found else 0

    before = counted("499")
    url = httpx.URL(daemon.url)
    with socket.create_connection((url.host, url.port)) as raw:
        raw.sendall(
            b"POST /v1/goals HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {TOKENS['admin']}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            + b'{"goal":'
        )
    wait_for(lambda: counted("499") > before, timeout=10, what="the disconnect to be counted")
    assert counted("500") == 0
    _submit(http)


def test_a_goal_shows_its_steps_pending_review_and_outcome(http: httpx.Client) -> None:
    """GET /v1/goals/{id} shows checkpointed steps and pending reviews, then the outcome."""
    goal = _submit(http)
    review_id = wait_for(
        lambda: http.get(f"/v1/goals/{goal['id']}").json()["pending_reviews"],
        timeout=10,
        what="the review to be requested",
    )[0]
    detail = http.get(f"/v1/goals/{goal['id']}").json()
    assert detail["status"] == "running"
    assert [s["key"] for s in detail["steps"]] == ["reviewed/desk#draft"]
    review = http.get(f"/v1/reviews/{review_id}").json()
    assert review["output"] == "draft for write about trees"
    edited = http.post(f"/v1/reviews/{review_id}/edit", json={"output": "better"})
    assert edited.status_code == 200
    assert edited.json()["status"] == "edited"
    done = wait_status(http, str(goal["id"]), {"succeeded"}, timeout=10)
    assert done["outcome"]["output"] == "better"
    assert done["pending_reviews"] == []
    twice = http.post(f"/v1/reviews/{review_id}/approve")
    assert twice.status_code == 409


def test_list_filters_by_status_and_pages_with_a_cursor(http: httpx.Client) -> None:
    """Listing is newest first; next_cursor walks every goal exactly once."""
    ids = [_submit(http)["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/goals", params=params).json()
        seen.extend(g["id"] for g in page["goals"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert seen[:5] == ids[::-1]
    running = http.get("/v1/goals", params={"status": "running", "limit": 500}).json()["goals"]
    assert {g["status"] for g in running} <= {"running"}
    bad = http.get("/v1/goals", params={"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["field"] == "limit"


def test_cancel_ends_a_goal_and_records_who(daemon: Daemon, http: httpx.Client) -> None:
    """Cancelling a goal parked in review answers 202, ends it cancelled, voids the review,
    and the audit log names the role that asked."""
    goal = _submit(http)
    wait_for(
        lambda: http.get(f"/v1/goals/{goal['id']}").json()["pending_reviews"],
        timeout=10,
        what="the review",
    )
    with daemon.client(TOKENS["submit"]) as submitter:
        response = submitter.post(f"/v1/goals/{goal['id']}/cancel")
        assert response.status_code in (200, 202)
    done = wait_status(http, str(goal["id"]), {"cancelled"}, timeout=10)
    assert done["error"] == "cancelled by submit"
    assert http.post(f"/v1/goals/{goal['id']}/cancel").status_code == 409
    events = http.get("/v1/audit", params={"goal_id": goal["id"]}).json()["events"]
    kinds = [(e["kind"], e["actor"]) for e in events]
    assert ("goal.cancel_requested", "submit") in kinds
    assert ("goal.finished", "submit") in kinds
    assert ("review.void", "daemon") in kinds


def test_events_stream_until_the_goal_ends(http: httpx.Client) -> None:
    """The SSE stream replays stored events, follows live ones, and closes after the end."""
    goal = _submit(http)
    review_id = wait_for(
        lambda: http.get(f"/v1/goals/{goal['id']}").json()["pending_reviews"],
        timeout=10,
        what="the review",
    )[0]
    kinds: list[str] = []
    with http.stream("GET", f"/v1/goals/{goal['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kinds.append(line[7:])
                if kinds[-1] == "review.requested":
                    assert http.post(f"/v1/reviews/{review_id}/approve").status_code == 200
    assert kinds[0] == "goal.accepted"
    assert kinds[-1] == "goal.finished"
    assert "step.checkpointed" in kinds
    assert "review.decided" in kinds
    after = http.get(f"/v1/goals/{goal['id']}/events", params={"follow": "false"})
    assert after.text.count("event: ") == len(kinds)


def test_the_tree_shows_every_node(http: httpx.Client) -> None:
    """GET /v1/tree lists every node with its load, failures and breaker."""
    tree = http.get("/v1/tree").json()
    assert tree["tree"] == "reviewed"
    assert [n["path"] for n in tree["nodes"]] == ["reviewed/desk", "reviewed/desk/write"]
    leaf = tree["nodes"][1]
    assert leaf["breaker"] == "closed"
    assert {"in_flight", "succeeded", "failed", "tripped", "restarts"} <= set(leaf)


def test_metrics_are_prometheus_text(http: httpx.Client) -> None:
    """/metrics is the Prometheus text format: HELP and TYPE for each family, then samples."""
    response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+Inf]+$')
    typed: set[str] = set()
    for line in response.text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif not line.startswith("# HELP "):
            assert sample.match(line), line
            name = line.split("{")[0].split(" ")[0]
            assert re.sub(r"_(bucket|sum|count)$", "", name) in typed | {name}
    assert "overstory_goals_accepted_total" in typed
    assert 'overstory_node_in_flight{path="reviewed/desk/write"}' in response.text


def test_health_needs_no_token_and_everything_else_does(daemon: Daemon) -> None:
    """/healthz and /readyz answer without a token; /openapi.json needs one."""
    with httpx.Client(base_url=daemon.url) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready"}
        refused = anonymous.get("/openapi.json")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
    with daemon.client() as http:
        document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/goals" in document["paths"]


def test_strings_a_goal_makes_that_are_not_unicode_text_are_served_as_u_fffd(
    tmp_path: Path,
) -> None:
    """An output or error holding a lone surrogate is stored, and served (goal, list,
    events) with U+FFFD in its place; the daemon goes on."""
    with Daemon(tmp_path / "state", "garbled") as daemon, daemon.client() as http:
        done = _submit(http)
        failed = _submit(http, input="fail")
        wait_status(http, done["id"], {"succeeded"}, timeout=10)
        wait_status(http, failed["id"], {"failed"}, timeout=10)
        goal = http.get(f"/v1/goals/{done['id']}").json()
        assert goal["outcome"]["output"] == {"text": "caf\ufffd"}
        assert "caf\ufffd" in http.get(f"/v1/goals/{failed['id']}").json()["error"]
        assert http.get("/v1/goals").status_code == 200
        events = http.get(f"/v1/goals/{failed['id']}/events", params={"follow": "false"})
        assert "caf\ufffd" in events.content.decode("utf-8")
        assert _submit(http)["status"] in ("queued", "running", "succeeded")


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    """Past --max-queue waiting goals, submit answers 429 with Retry-After; a known
    idempotency key is still answered with its goal."""
    args = ["--max-concurrent", "1", "--max-queue", "1"]
    with Daemon(tmp_path / "state", "reviewed", args=args) as daemon, daemon.client() as http:
        running = _submit(http)
        wait_for(
            lambda: http.get(f"/v1/goals/{running['id']}").json()["pending_reviews"],
            timeout=10,
            what="the first goal to park in review",
        )
        queued = _submit(http, idempotency_key="queued")
        refused = http.post("/v1/goals", json={"goal": "one too many"})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"] == "busy"
        again = http.post(
            "/v1/goals", json={"goal": "write about trees", "idempotency_key": "queued"}
        )
        assert (again.status_code, again.json()["id"]) == (200, queued["id"])
