"""The client commands against a real daemon: output, exit codes, and clear refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import Daemon, run_cli, wait_for, wait_status


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("cli") / "state", "reviewed") as daemon:
        yield daemon


def _wait_review(daemon: Daemon, goal_id: str, round: int) -> dict[str, Any]:
    """Poll (over HTTP, which is quicker than the CLI) until the goal's review of ``round``
    is pending; return it."""

    def pending() -> dict[str, Any] | None:
        with daemon.client() as http:
            listed = http.get("/v1/reviews", params={"goal_id": goal_id}).json()["reviews"]
        return next((r for r in listed if r["round"] == round), None)

    review: dict[str, Any] = wait_for(pending, timeout=10, what=f"review round {round}")
    return review


def test_without_a_daemon_commands_exit_2_with_one_clear_paragraph(tmp_path: Path) -> None:
    """With nothing listening, a command says so (and how to start one) and exits 2."""
    (tmp_path / "token").write_text("some-token\n")
    result = run_cli("list", "--state-dir", str(tmp_path), "--url", "http://127.0.0.1:9")
    assert result.code == 2
    assert "no overstory daemon answers at http://127.0.0.1:9" in result.err
    assert "overstory serve" in result.err
    assert "Traceback" not in result.err


def test_without_a_token_file_commands_exit_2(tmp_path: Path) -> None:
    """No token anywhere: the command names the file it looked for and exits 2."""
    result = run_cli("list", "--state-dir", str(tmp_path))
    assert result.code == 2
    assert f"{tmp_path / 'token'} does not exist" in result.err


def test_a_wrong_token_is_refused_with_a_hint(reviewed: Daemon) -> None:
    """A token the daemon does not know: exit 2 and a hint where the CLI reads tokens."""
    result = reviewed.cli("list", token="wrong-token-0123456789")
    assert result.code == 2
    assert "the daemon refused the token" in result.err
    assert "Traceback" not in result.err


def test_submit_prints_the_id_and_status_shows_the_goal(reviewed: Daemon) -> None:
    """submit prints the new goal's id; status shows it waiting for its review."""
    submitted = reviewed.cli("submit", "a haiku", "--input", '{"season": "autumn"}')
    assert submitted.code == 0, submitted
    goal_id = submitted.out.strip()
    _wait_review(reviewed, goal_id, 1)
    status = reviewed.cli("status", goal_id)
    assert status.code == 0
    assert "waiting for review" in status.out
    assert f"goal {goal_id}: running" in status.out
    assert "reviewed/desk#draft" in status.out
    as_json = json.loads(reviewed.cli("status", goal_id, "--json").out)
    assert as_json["input"] == {"season": "autumn"}


def test_reviews_then_reject_then_approve_finish_the_goal(reviewed: Daemon) -> None:
    """reviews lists the pending review; reject re-runs the step; approve ends the goal."""
    goal_id = reviewed.cli("submit", "a limerick").out.strip()
    first = _wait_review(reviewed, goal_id, 1)
    listed = json.loads(reviewed.cli("reviews", "--json").out)["reviews"]
    assert first["id"] in [r["id"] for r in listed]
    assert reviewed.cli("reject", str(first["id"]), "--reason", "funnier").code == 0
    second = _wait_review(reviewed, goal_id, 2)
    assert second["output"] == "draft for a limerick [funnier]"
    approved = reviewed.cli("approve", str(second["id"]))
    assert approved.code == 0
    assert approved.out.strip() == f"review {second['id']}: approved"
    with reviewed.client() as http:
        wait_status(http, goal_id, {"succeeded"}, timeout=10)
    again = reviewed.cli("approve", str(second["id"]))
    assert again.code == 2
    assert "409 already_decided" in again.err


def test_cancel_list_tree_and_events(reviewed: Daemon) -> None:
    """cancel stops a goal; list shows it; tree shows the nodes; events prints its log."""
    goal_id = reviewed.cli("submit", "a sonnet").out.strip()
    cancelled = reviewed.cli("cancel", goal_id)
    assert cancelled.code == 0, cancelled
    assert cancelled.out.startswith(f"goal {goal_id}: cancel")
    with reviewed.client() as http:
        wait_status(http, goal_id, {"cancelled"}, timeout=10)
    assert f"{goal_id}  cancelled" in reviewed.cli("list").out
    tree = reviewed.cli("tree")
    assert tree.code == 0
    assert "desk" in tree.out
    assert "write" in tree.out
    events = reviewed.cli("events", goal_id)
    assert events.code == 0
    lines = events.out.splitlines()
    assert "goal.accepted" in lines[0]
    assert "goal.finished" in lines[-1]
    assert "status=cancelled" in lines[-1]
    assert reviewed.cli("status", "nope").err.strip() == "overstory status: error: no goal nope"


def test_submit_wait_prints_the_output_and_exits_0(tmp_path: Path) -> None:
    """submit --wait follows the goal to its end, prints its output as JSON, exits 0."""
    with Daemon(tmp_path / "state", "slow") as daemon:
        result = daemon.cli("submit", "make", "--wait")
    assert result.code == 0, result
    assert json.loads(result.out) == {"a": "a(first)", "b": "b(second)", "c": "c(third)"}
    assert "✓ c" in result.err
    assert "goal.finished" in result.err


def test_submit_wait_exits_1_when_the_goal_fails(tmp_path: Path) -> None:
    """A goal that fails makes submit --wait exit 1 with the error in one line."""
    with Daemon(tmp_path / "state", "failing") as daemon:
        result = daemon.cli("submit", "the impossible", "--wait")
    assert result.code == 1, result
    assert "failed: " in result.err
    assert "cannot do 'the impossible'" in result.err
    assert "Traceback" not in result.err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    """Bad --input, or a target with no tree, exit 2 with the reason."""
    bad_input = run_cli("submit", "g", "--input", "{nope", "--state-dir", str(tmp_path))
    assert bad_input.code == 2
    assert "--input is not JSON" in bad_input.err
    no_tree = run_cli("serve", "tests/daemon_trees.py:nothing", "--state-dir", str(tmp_path))
    assert no_tree.code == 2
    assert "has no attribute 'nothing'" in no_tree.err


def test_trace_draws_a_goals_waterfall_when_the_daemon_records_spans(tmp_path: Path) -> None:
    """With serve --trace, trace ID draws the goal's spans, also once they are in the
    rotated file (--trace-limit of about 1 KiB); without, it says how to get them."""
    traced = tmp_path / "traced"
    with Daemon(traced, "slow", args=["--trace", "--trace-limit", "0.001"]) as daemon:
        goal_id = daemon.cli("submit", "g").out.strip()
        with daemon.client() as http:
            wait_status(http, goal_id, {"succeeded"}, timeout=10)
        drawn = daemon.cli("trace", goal_id)
    assert (traced / "traces.jsonl.1").stat().st_size >= 1048
    assert drawn.code == 0, drawn
    assert "pipeline" in drawn.out
    assert drawn.out.count("work") >= 3
    with Daemon(tmp_path / "untraced", "slow") as daemon:
        goal_id = daemon.cli("submit", "g").out.strip()
        refused = daemon.cli("trace", goal_id)
    assert refused.code == 2
    assert "start it with `overstory serve --trace`" in refused.err
