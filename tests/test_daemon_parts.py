"""The daemon's small parts: strict validation, schemas, tokens, addresses, text views."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from overstory._errors import ConfigurationError
from overstory.daemon._api import ENDPOINTS, PUBLIC, openapi
from overstory.daemon._auth import AuthError, Role, Tokens
from overstory.daemon._config import Config, is_loopback
from overstory.daemon._lock import StateLock
from overstory.daemon._models import (
    InvalidBody,
    RejectReview,
    SubmitGoal,
    json_schema,
    structure,
)
from overstory.daemon._view import GoalView, describe_event, render_health


def _problems(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidBody) as caught:
        structure(data, SubmitGoal)
    return [(p.field, p.problem) for p in caught.value.problems]


def test_json_types_are_taken_as_they_are() -> None:
    """No coercion: "5" is not an integer, true is not a number; 5.0 is the integer 5."""
    assert _problems({"goal": "g", "priority": "5"}) == [
        ("priority", "expected an integer, got a string")
    ]
    assert _problems({"goal": "g", "timeout": True}) == [
        ("timeout", "expected a number, got a boolean")
    ]
    assert structure({"goal": "g", "priority": 5.0}, SubmitGoal).priority == 5


def test_every_problem_is_reported_at_once() -> None:
    """A body with several faults gets one problem per field."""
    assert sorted(_problems({"goal": " ", "priority": 5000, "extra": 1})) == [
        ("extra", "unknown field"),
        ("goal", "must not be empty or blank"),
        ("priority", "must be at least -1000 and at most 1000, got 5000"),
    ]


def test_the_schema_states_the_same_limits_the_validators_enforce() -> None:
    """The generated JSON Schema carries each field's bounds and required list."""
    components: dict[str, Any] = {}
    json_schema(SubmitGoal, components)
    schema = components["SubmitGoal"]
    assert schema["required"] == ["goal"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["priority"]["minimum"] == -1000
    assert schema["properties"]["priority"]["maximum"] == 1000
    assert schema["properties"]["timeout"]["anyOf"][0]["exclusiveMinimum"] == 0
    json_schema(RejectReview, components)
    assert components["RejectReview"]["properties"]["reason"]["minLength"] == 1


def test_the_openapi_document_lists_every_endpoint_with_its_security() -> None:
    """Each endpoint is documented once; all but the health checks require the bearer
    scheme and document 401."""
    document = openapi()
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == {(e.method, e.path) for e in ENDPOINTS}
    for endpoint in ENDPOINTS:
        operation = operations[endpoint.method, endpoint.path]
        if endpoint.role == PUBLIC:
            assert "security" not in operation
        else:
            assert operation["security"] == [{"bearer": []}]
            assert "401" in operation["responses"]


def test_roles_nest_under_admin() -> None:
    """admin may do everything; submit and review only their own; any role reads."""
    assert Role.ADMIN.may(Role.SUBMIT)
    assert Role.ADMIN.may(Role.REVIEW)
    assert Role.SUBMIT.may(None)
    assert not Role.SUBMIT.may(Role.REVIEW)
    assert not Role.REVIEW.may(Role.SUBMIT)
    assert not Role.REVIEW.may(Role.ADMIN)


def test_the_admin_token_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    """The first load writes a random token readable by its owner only; later loads reuse it."""
    first = Tokens.load(tmp_path)
    token = (tmp_path / "token").read_text().strip()
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
    assert len(token) >= 32
    assert Tokens.load(tmp_path).by_digest == first.by_digest
    identity = first.identify(f"bearer {token}")
    assert identity is not None
    assert identity.role is Role.ADMIN
    assert first.identify(f"Basic {token}") is None
    assert first.identify("Bearer ") is None
    assert not first.configured


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('owner = ["0123456789abcdefgh"]', "unknown role 'owner'"),
        ('submit = ["short"]', "shorter than 16 characters"),
        ("submit = 5", "must be a token or a list of tokens"),
        ("submit = [", "is not valid TOML"),
        ("", "names no tokens"),
    ],
)
def test_a_bad_tokens_file_is_refused_with_the_reason(
    tmp_path: Path, text: str, complaint: str
) -> None:
    """A tokens file with an unknown role, a weak token or bad TOML is refused."""
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(AuthError, match=complaint):
        Tokens.load(tmp_path, path)


def test_configured_tokens_carry_their_roles(tmp_path: Path) -> None:
    """Each token in the file maps to its role; the generated admin token still works."""
    path = tmp_path / "tokens.toml"
    path.write_text(
        'submit = ["submit-0123456789abc", "submit-abcdefghij012"]\nreview = "r-0123456789abcdef"\n'
    )
    tokens = Tokens.load(tmp_path, path)
    assert tokens.configured
    roles = {
        tokens.identify(f"Bearer {t}").role for t in ("submit-abcdefghij012", "r-0123456789abcdef")
    }  # type: ignore[union-attr]
    assert roles == {Role.SUBMIT, Role.REVIEW}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    """Only addresses that reach this machine alone count as loopback."""
    assert is_loopback(host) is loopback


def test_the_journal_commits_normal_by_default_and_full_on_request(tmp_path: Path) -> None:
    """synchronous defaults to normal, takes full, and refuses anything else by name."""
    assert Config(state_dir=tmp_path).synchronous == "normal"
    assert Config(state_dir=tmp_path, synchronous="full").synchronous == "full"
    with pytest.raises(ValueError, match="synchronous must be one of normal, full, got 'off'"):
        Config(state_dir=tmp_path, synchronous="off")  # type: ignore[arg-type]


def _event(seq: int, kind: str, **data: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": 1000.0 + seq,
        "goal_id": "g",
        "kind": kind,
        "actor": "tree",
        "data": data,
    }


def test_the_live_view_folds_events_into_a_tree_of_steps() -> None:
    """Attempts, retries, checkpoints and reviews become one line per step."""
    view = GoalView("g1", goal="plan a trip")
    for event in [
        _event(1, "goal.started"),
        _event(2, "attempt.started", path="t/boss/team", step="book", attempt=1),
        _event(
            3,
            "attempt.ended",
            path="t/boss/team",
            step="book",
            attempt=1,
            outcome="failed",
            error="Timeout: slow",
        ),
        _event(4, "supervision.retry", path="t/boss", step="book", delay=0.5, error_type="Timeout"),
        _event(5, "step.checkpointed", key="t/boss#plan"),
        _event(6, "review.requested", review=3, path="t/boss", step="plan", round=1),
        _event(7, "attempt.started", path="t/boss/team/crm", step="lookup", attempt=2),
    ]:
        view.apply(event)
    assert view.render(now=1010.0).splitlines() == [
        "goal g1 · running · 9.0 s · plan a trip",
        "  t/boss",
        "    ↻ book             retrying  retry in 0.5 s after Timeout",
        "    ⏸ plan             review  waiting for review 3 (round 1)",
        "    t/boss/team",
        "      ▶ lookup           running  t/boss/team/crm, attempt 2",
    ]
    view.apply(_event(8, "goal.finished", status="failed", error="Escalation: gave up"))
    assert view.ended
    assert view.render().splitlines()[-1] == "error: Escalation: gave up"


def test_event_lines_and_tree_health_render_as_text() -> None:
    """An event is one line without the token; health is one indented line per node."""
    line = describe_event(_event(12, "goal.accepted", goal="x", token="abcd1234"))
    assert "#12" in line
    assert "goal.accepted" in line
    assert "goal=x" in line
    assert "abcd1234" not in line
    text = render_health(
        {
            "tree": "t",
            "accepting": True,
            "goals_running": 1,
            "goals_queued": 2,
            "reviews_pending": 0,
            "nodes": [
                {
                    "path": "t/boss",
                    "layer": "strategic",
                    "in_flight": 1,
                    "succeeded": 0,
                    "failed": 0,
                    "tripped": False,
                },
                {
                    "path": "t/boss/w",
                    "layer": "leaf",
                    "in_flight": 1,
                    "succeeded": 4,
                    "failed": 2,
                    "breaker": "open",
                    "restarts": 1,
                },
            ],
        }
    )
    assert text.splitlines() == [
        "t: 1 running, 2 queued, 0 reviews pending",
        "  boss                 [strategic] in flight 1, done 0, failed 0",
        "    w                    [leaf] in flight 1, done 4, failed 2, breaker open, restarts 1",
    ]


def test_the_state_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    """A second lock on a state directory is refused at once, naming the directory and the
    holder's pid; once the holder releases it, the lock can be taken again."""
    first = StateLock(tmp_path)
    first.acquire()
    second = StateLock(tmp_path)
    with pytest.raises(
        ConfigurationError, match=f"in use by another daemon \\(pid {os.getpid()}\\)"
    ):
        second.acquire()
    first.release()
    second.acquire()
    assert (tmp_path / "lock").read_text() == f"{os.getpid()}\n"
    second.release()
    second.release()  # releasing twice is harmless
