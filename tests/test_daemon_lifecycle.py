"""Stopping and restarting a real daemon: drain, grace, a second signal, reviews that wait."""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from pathlib import Path

import httpx
from daemon_harness import ROOT, Daemon, overstory, wait_for, wait_status


def _starts(runs: Path) -> collections.Counter[tuple[str, str]]:
    lines = runs.read_text().splitlines() if runs.exists() else []
    return collections.Counter(
        (goal, step) for goal, step, what in (line.split() for line in lines) if what == "start"
    )


def _submit(http: httpx.Client, goal: str = "g") -> str:
    response = http.post("/v1/goals", json={"goal": goal})
    assert response.status_code == 202, response.text
    goal_id: str = response.json()["id"]
    return goal_id


def test_sigterm_drains_running_goals_then_exits_0(tmp_path: Path) -> None:
    """On SIGTERM, submit answers 503 and /readyz 503 while running goals finish within the
    grace period; queued goals stay queued; the daemon exits 0 and resumes them on restart."""
    runs = tmp_path / "runs.log"
    env = {"OVERSTORY_TEST_RUNS": str(runs), "OVERSTORY_TEST_SLEEP": "0.25"}
    daemon = Daemon(tmp_path / "state", "slow", args=["--max-concurrent", "1"], env=env)
    with daemon:
        with daemon.client() as http:
            running = _submit(http, "first")
            queued = _submit(http, "second")
            wait_status(http, running, {"running"}, timeout=10)
            daemon.signal(signal.SIGTERM)
            refused = wait_for(
                lambda: (
                    (r := http.post("/v1/goals", json={"goal": "late"})).status_code == 503 and r
                ),
                timeout=5,
                what="submit to answer 503",
            )
            assert refused.json()["error"] == "draining"
            assert http.get("/readyz").status_code == 503
        assert daemon.wait(timeout=10) == 0
        daemon.start()
        with daemon.client() as http:
            assert http.get(f"/v1/goals/{running}").json()["status"] == "succeeded"
            wait_status(http, queued, {"succeeded"}, timeout=10)
            assert http.get("/v1/goals").json()["goals"][0]["id"] == queued
    assert _starts(runs) == dict.fromkeys([(g, s) for g in (running, queued) for s in "abc"], 1)


def test_a_follower_is_told_when_the_daemon_stops_first(tmp_path: Path) -> None:
    """submit --wait on a goal the shutdown interrupts ends its stream cleanly, says the goal
    resumes on the next start, and exits 2."""
    env = {"OVERSTORY_TEST_SLEEP": "1"}
    daemon = Daemon(tmp_path / "state", "slow", args=["--grace", "0.1"], env=env)
    with daemon:
        follower = subprocess.Popen(
            [*overstory("submit", "g", "--wait"), "--state-dir", str(daemon.state_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with daemon.client() as http:
                wait_for(
                    lambda: http.get("/v1/goals", params={"status": "running"}).json()["goals"],
                    timeout=10,
                    what="the goal to start",
                )
            assert daemon.stop() == 0
            _, err = follower.communicate(timeout=10)
        finally:
            follower.kill()
    assert follower.returncode == 2
    assert "the daemon stopped before goal" in err
    assert "resumes when the daemon starts again" in err


def test_goals_still_running_after_the_grace_period_resume_after_restart(tmp_path: Path) -> None:
    """Past the grace period running goals are cancelled but stay resumable: after a restart
    they finish, and steps checkpointed before the stop do not run again."""
    runs = tmp_path / "runs.log"
    env = {"OVERSTORY_TEST_RUNS": str(runs), "OVERSTORY_TEST_SLEEP": "0.4"}
    daemon = Daemon(tmp_path / "state", "slow", args=["--grace", "0.1"], env=env)
    with daemon:
        with daemon.client() as http:
            goal = _submit(http)
            wait_for(
                lambda: http.get(f"/v1/goals/{goal}").json()["steps"],
                timeout=10,
                what="step a to be checkpointed",
            )
        began = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - began < 5
        daemon.start()
        with daemon.client() as http:
            done = wait_status(http, goal, {"succeeded"}, timeout=10)
            kinds = [
                e["kind"] for e in http.get("/v1/audit", params={"goal_id": goal}).json()["events"]
            ]
    assert done["outcome"]["output"]["c"] == "c(third)"
    assert kinds.count("goal.resumed") == 1
    assert kinds.count("goal.finished") == 1
    assert _starts(runs)[goal, "a"] == 1


def test_a_second_signal_exits_at_once_and_loses_nothing(tmp_path: Path) -> None:
    """A second SIGTERM during a long drain exits at once (143); accepted goals complete
    after the restart."""
    env = {"OVERSTORY_TEST_SLEEP": "0.5"}
    daemon = Daemon(tmp_path / "state", "slow", args=["--grace", "60"], env=env)
    with daemon:
        with daemon.client() as http:
            goals = [_submit(http, f"g{n}") for n in range(3)]
            wait_status(http, goals[0], {"running"}, timeout=10)
        daemon.signal(signal.SIGTERM)
        time.sleep(0.2)
        began = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 128 + signal.SIGTERM
        assert time.monotonic() - began < 3
        daemon.start()
        with daemon.client() as http:
            for goal in goals:
                wait_status(http, goal, {"succeeded"}, timeout=15)


def test_a_pending_review_survives_a_restart_and_its_decisions_are_kept(tmp_path: Path) -> None:
    """A review pending at shutdown is still pending (same id) after a restart; rejecting it
    re-runs the step with the reason; approving round 2 finishes the goal; the draft
    checkpointed before the restart is not written again."""
    runs = tmp_path / "runs.log"
    env = {"OVERSTORY_TEST_RUNS": str(runs)}
    daemon = Daemon(tmp_path / "state", "reviewed", args=["--grace", "0.1"], env=env)
    with daemon:
        with daemon.client() as http:
            goal = _submit(http, "a poem")
            review = wait_for(
                lambda: http.get("/v1/reviews").json()["reviews"],
                timeout=10,
                what="the review",
            )[0]
        assert daemon.stop() == 0
        daemon.start()
        with daemon.client() as http:
            pending = http.get("/v1/reviews").json()["reviews"]
            assert [(r["id"], r["round"]) for r in pending] == [(review["id"], 1)]
            rejected = http.post(f"/v1/reviews/{review['id']}/reject", json={"reason": "rhyme"})
            assert rejected.status_code == 200
            second = wait_for(
                lambda: [r for r in http.get("/v1/reviews").json()["reviews"] if r["round"] == 2],
                timeout=10,
                what="round 2",
            )[0]
            assert second["output"] == "draft for a poem [rhyme]"
            assert http.post(f"/v1/reviews/{second['id']}/approve").status_code == 200
            done = wait_status(http, goal, {"succeeded"}, timeout=10)
    assert done["outcome"]["output"] == "draft for a poem [rhyme]"
    assert _starts(runs)[goal, "draft"] == 2


def test_a_decision_committed_before_a_crash_is_not_asked_again(tmp_path: Path) -> None:
    """Killed while the step after an approved review runs, the restarted daemon answers the
    review from the stored decision and finishes the goal without asking again."""
    env = {"OVERSTORY_TEST_SLEEP": "2"}
    daemon = Daemon(tmp_path / "state", "review_then_publish", env=env)
    with daemon:
        with daemon.client() as http:
            goal = _submit(http, "essay")
            review = wait_for(
                lambda: http.get("/v1/reviews").json()["reviews"], timeout=10, what="the review"
            )[0]
            assert http.post(f"/v1/reviews/{review['id']}/approve").status_code == 200
            wait_for(
                lambda: http.get(f"/v1/goals/{goal}").json()["running"][1:],
                timeout=10,
                what="the publish step to start",
            )
        daemon.kill()
        env["OVERSTORY_TEST_SLEEP"] = "0"
        daemon.env.update(env)
        daemon.start()
        with daemon.client() as http:
            done = wait_status(http, goal, {"succeeded"}, timeout=10)
            reviews = http.get("/v1/reviews", params={"status": "all"}).json()["reviews"]
            replayed = http.get("/v1/audit", params={"goal_id": goal, "kind": "review."}).json()
    assert done["outcome"]["output"]["draft"] == "draft for essay"
    assert [(r["id"], r["status"]) for r in reviews] == [(review["id"], "approved")]
    kinds = [e["kind"] for e in replayed["events"]]
    assert kinds == ["review.requested", "review.decided", "review.replayed"]


def test_a_second_daemon_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    """While a daemon serves from a state directory another refuses to start there (exit 2,
    naming the directory and the holder's pid) and the first keeps serving; once the first
    is killed with SIGKILL, a new daemon starts there at once."""
    state = tmp_path / "state"
    first = Daemon(state, "slow")
    with first:
        assert first.process is not None
        holder = first.process.pid
        second = subprocess.run(
            overstory("serve", first.target, "--port", "0", "--state-dir", str(state)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert f"{state} is in use by another daemon (pid {holder})" in second.stderr
        with first.client() as http:
            assert http.get("/healthz").status_code == 200
            goal = _submit(http)
        first.signal(signal.SIGKILL)
        first.wait()
        first.start()
        with first.client() as http:
            wait_status(http, goal, {"succeeded"}, timeout=10)
