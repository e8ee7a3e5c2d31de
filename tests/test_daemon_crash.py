"""Durability: a daemon killed with SIGKILL mid-run loses nothing and repeats no finished step."""

from __future__ import annotations

import collections
import sqlite3
import threading
from pathlib import Path

import pytest
from daemon_harness import Daemon, wait_for

GOALS = 24
STEP_SECONDS = "0.3"


def _runs(path: Path) -> list[tuple[str, str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines() if line]  # type: ignore[misc]


def test_sigkill_mid_run_then_restart_completes_every_goal_exactly_once(tmp_path: Path) -> None:
    """After SIGKILL and a restart: every accepted goal succeeds once, checkpointed steps never
    run again, and a step in flight at the kill runs at most once more."""
    runs = tmp_path / "runs.log"
    env = {"OVERSTORY_TEST_RUNS": str(runs), "OVERSTORY_TEST_SLEEP": STEP_SECONDS}
    daemon = Daemon(tmp_path / "state", "slow", args=["--max-concurrent", "16"], env=env)
    with daemon:
        with daemon.client() as http:
            accepted = []
            for number in range(GOALS):
                response = http.post("/v1/goals", json={"goal": f"goal {number}", "input": number})
                assert response.status_code == 202, response.text
                accepted.append(response.json()["id"])
        # kill once some steps are checkpointed and others are in flight
        wait_for(
            lambda: sum(1 for r in _runs(runs) if r[2] == "end") >= 12,
            timeout=20,
            what="a dozen steps to finish",
        )
        daemon.kill()

        journal = sqlite3.connect(daemon.state_dir / "journal.sqlite3")
        try:
            checkpointed = {
                (goal_id, key.rsplit("#", 1)[1])
                for goal_id, key in journal.execute("SELECT goal_id, key FROM checkpoints")
            }
            final_before = journal.execute(
                "SELECT count(*) FROM goals WHERE status = 'succeeded'"
            ).fetchone()[0]
        finally:
            journal.close()
        before_kill = _runs(runs)
        started_before = {(g, s) for g, s, what in before_kill if what == "start"}
        in_flight = started_before - checkpointed
        assert checkpointed, "the kill came before any checkpoint: the test proves nothing"
        assert in_flight, "no step was in flight at the kill: the test proves nothing"
        assert final_before < GOALS

        daemon.start()
        with daemon.client() as http:

            def all_done() -> list[dict[str, object]] | None:
                goals = http.get("/v1/goals", params={"limit": 500}).json()["goals"]
                done = [g for g in goals if g["status"] not in ("queued", "running")]
                return goals if len(done) == len(goals) else None

            goals = wait_for(all_done, timeout=30, what="every goal to end after the restart")
            assert sorted(g["id"] for g in goals) == sorted(accepted)
            assert {g["status"] for g in goals} == {"succeeded"}
            for goal_id in accepted[:3]:
                outcome = http.get(f"/v1/goals/{goal_id}").json()["outcome"]
                assert outcome["output"] == {"a": "a(first)", "b": "b(second)", "c": "c(third)"}
            audit = http.get("/v1/audit", params={"kind": "goal.finished", "limit": 1000}).json()
            finished = collections.Counter(e["goal_id"] for e in audit["events"])
            assert finished == dict.fromkeys(accepted, 1)

    after_kill = _runs(runs)[len(before_kill) :]
    rerun = collections.Counter((g, s) for g, s, what in after_kill if what == "start")
    assert not (set(rerun) & checkpointed), "a checkpointed step ran again"
    assert all(rerun[step] <= 1 for step in in_flight)
    total = collections.Counter((g, s) for g, s, what in _runs(runs) if what == "start")
    assert set(total) == {(g, s) for g in accepted for s in "abc"}
    assert all(count == 1 for step, count in total.items() if step not in in_flight)
    assert all(count <= 2 for count in total.values())


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_every_goal_answered_202_is_in_the_journal_after_sigkill(
    tmp_path: Path, synchronous: str
) -> None:
    """SIGKILL right after the last 202 of concurrent submissions: every accepted goal is
    in the journal (synchronous=normal and full alike)."""
    daemon = Daemon(
        tmp_path / "state", "slow", args=["--max-concurrent", "1", "--synchronous", synchronous]
    )
    accepted: list[str] = []
    with daemon:

        def submit(number: int) -> None:
            with daemon.client() as http:
                for n in range(number, number + 40):
                    response = http.post("/v1/goals", json={"goal": f"goal {n}", "input": n})
                    assert response.status_code == 202, response.text
                    accepted.append(response.json()["id"])

        threads = [threading.Thread(target=submit, args=(n * 40,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        daemon.kill()
    journal = sqlite3.connect(daemon.state_dir / "journal.sqlite3")
    try:
        stored = {goal_id for (goal_id,) in journal.execute("SELECT id FROM goals")}
    finally:
        journal.close()
    assert len(accepted) == 160
    assert set(accepted) <= stored
