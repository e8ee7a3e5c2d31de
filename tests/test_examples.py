"""The three examples, run the way users run them: through ``overstory run``.

They are offline and deterministic, so their outputs are pinned exactly.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import overstory as ov
from overstory._cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def example(name: str) -> ModuleType:
    """Import ``examples/NAME.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(
        f"overstory_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(
    capsys: pytest.CaptureFixture[str], name: str, goal: str, *options: str
) -> tuple[int, str, str]:
    """``overstory run examples/NAME.py:tree GOAL OPTIONS``: (exit status, stdout, stderr)."""
    status = main(["run", f"{EXAMPLES / name}.py:tree", goal, *options])
    out, err = capsys.readouterr()
    return status, out, err


def outcome_of(
    capsys: pytest.CaptureFixture[str], name: str, goal: str, *options: str
) -> ov.Outcome:
    """The outcome of ``overstory run ... --json``, decoded."""
    status, out, _ = run(capsys, name, goal, "--json", *options)
    outcome = ov.from_json(ov.Outcome, out)
    assert status == (0 if outcome.ok else 1)
    return outcome


def answer(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    """Pipe ``lines`` into stdin, as answers to review points."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))


def records(outcome: ov.Outcome, supervisor: str) -> dict[str, ov.StepRecord]:
    """The last record of each step of ``supervisor``, by step name (and item)."""
    return {
        record.step if record.item is None else f"{record.step}[{record.item}]": record
        for record in outcome.steps
        if record.supervisor == supervisor
    }


@pytest.mark.parametrize("name", ["agency", "loans", "research"])
def test_every_example_checks_ok(capsys: pytest.CaptureFixture[str], name: str) -> None:
    """``overstory check`` accepts each example's tree."""
    assert main(["check", f"{EXAMPLES / name}.py:tree"]) == 0
    assert capsys.readouterr().out.endswith("\nok\n")


@pytest.mark.parametrize("name", ["agency", "loans", "research"])
def test_every_example_runs_as_a_script(name: str) -> None:
    """``python examples/NAME.py`` runs its GOAL through the Python API and succeeds."""
    result = subprocess.run(
        [sys.executable, EXAMPLES / f"{name}.py"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("succeeded {")


# -- agency -----------------------------------------------------------------------------


def test_agency_done_means_a_reassignment_and_a_review(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Done: the agency run shows the CRM failures, the reassignment and the email review."""
    monkeypatch.chdir(ROOT)
    answer(monkeypatch, "a")
    status = main(["run", "examples/agency.py:tree", "Qualify lead ACME and book a follow-up call"])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.startswith("agency: SUCCEEDED in ")
    assert "history  succeeded  crm_backup  4 attempts  " in out
    assert "reassigned from crm_primary (3 failed)" in out
    assert "review approved" in out
    assert "failures (3, recovered)" in out
    assert out.count("ConnectionError: crm-primary.internal:443: connection refused") == 3
    assert "review: step email of agency/director" in err
    assert '      "to": "dana.reyes@acme.example",' in err


def test_agency_records_the_reassignment_and_the_review(capsys: pytest.CaptureFixture[str]) -> None:
    """Primary CRM tried 3 times, then the backup; email reviewed; call in the first slot."""
    outcome = outcome_of(capsys, "agency", example("agency").GOAL, "--auto-approve")
    assert outcome.ok
    sales = records(outcome, "agency/director/sales")
    assert (sales["history"].agent, sales["history"].attempts) == (
        "agency/director/sales/crm_backup",
        4,
    )
    assert [(f.path, f.error_type, f.attempt) for f in outcome.failures] == [
        ("agency/director/sales/crm_primary", "ConnectionError", attempt) for attempt in (1, 2, 3)
    ]
    director = records(outcome, "agency/director")
    assert director["email"].review == "approved"
    assert director["call"].agent == "agency/director/scheduling"
    assert outcome.output["call"] == {
        "when": "2024-06-04T10:00",
        "with": "Dana Reyes",
        "host": "Sam Okafor",
        "invite": "Following up: Asked for pricing for 40 seats",
    }


def test_agency_rejected_email_is_redrafted_with_the_feedback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rejecting the draft re-runs the mailer with the feedback; the next draft is approved."""
    answer(monkeypatch, "r", "Mention the 40 seats", "a")
    outcome = outcome_of(capsys, "agency", "Qualify lead ACME")
    assert outcome.output["email"]["revised_for"] == ["Mention the 40 seats"]
    assert [
        r.review for r in outcome.steps if r.step == "email" and r.supervisor == "agency/director"
    ] == [
        "rejected",
        "approved",
    ]


def test_agency_edited_email_is_handed_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited draft replaces the mailer's, and the call invite uses its subject."""
    edited = '{"to": "dana.reyes@acme.example", "subject": "Your 40 seats", "body": "Hi Dana"}'
    answer(monkeypatch, "e", edited)
    outcome = outcome_of(capsys, "agency", "Qualify lead ACME")
    assert outcome.output["email"]["subject"] == "Your 40 seats"
    assert outcome.output["call"]["invite"] == "Your 40 seats"


def test_agency_account_comes_from_the_input(capsys: pytest.CaptureFixture[str]) -> None:
    """``--input '{"account": ...}'`` picks the account; its owner hosts the call."""
    outcome = outcome_of(
        capsys, "agency", "Follow up", "--auto-approve", "--input", '{"account": "GLOBEX"}'
    )
    assert outcome.output["contact"]["name"] == "Hank Scorpio"
    assert outcome.output["call"]["host"] == "Priya Natarajan"


def test_agency_unknown_account_fails_the_goal(capsys: pytest.CaptureFixture[str]) -> None:
    """A goal naming no known account fails (exit 1) with the agent's reason."""
    status, out, _ = run(capsys, "agency", "Qualify lead UMBRELLA", "--auto-approve")
    assert status == 1
    assert "Fatal: no known account in this goal (known accounts: ACME, GLOBEX, INITECH)" in out


# -- loans ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("application", "decision", "reasons"),
    [
        ("A-1001", "approve", ["meets lending rules 2024-06, fraud risk low"]),
        ("A-1002", "refer", ["needs an underwriter: debt to income"]),
        (
            "A-1003",
            "decline",
            [
                "fraud risk high: address does not match the credit file; 6 applications in "
                "30 days; email address is 3 days old; device seen on other applicants' "
                "applications; identity not verified",
                "fails lending rules: identity",
            ],
        ),
    ],
)
def test_loans_decides_each_application(
    capsys: pytest.CaptureFixture[str], application: str, decision: str, reasons: list[str]
) -> None:
    """The decision step turns the three checks into approve, refer or decline."""
    outcome = outcome_of(capsys, "loans", f"Process application {application}")
    assert outcome.output["application"] == application
    assert outcome.output["decision"] == decision
    assert outcome.output["reasons"] == reasons
    assert ("offer" in outcome.output) is (decision == "approve")


def test_loans_approval_carries_an_offer_from_the_rate_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An approved application gets its amount, term and the APR for its credit score."""
    outcome = outcome_of(capsys, "loans", example("loans").GOAL)
    assert outcome.output["offer"] == {"amount": 18000, "term_months": 48, "apr": 6.9}


def test_loans_checks_run_in_parallel_before_the_decision(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """data, fraud and compliance start together; decision starts after all three ended."""
    steps = records(outcome_of(capsys, "loans", "Process application A-1002"), "loans/underwriting")
    checks = [steps[name] for name in ("data", "fraud", "compliance")]
    assert len({record.started for record in checks}) == 1
    assert steps["decision"].started >= max(r.started + r.duration for r in checks)
    assert steps["compliance"].agent == "loans/underwriting/risk"


def test_loans_application_comes_from_the_input(capsys: pytest.CaptureFixture[str]) -> None:
    """``--input '{"application": ...}'`` wins over an id in the goal."""
    outcome = outcome_of(
        capsys, "loans", "Process application A-1001", "--input", '{"application": "A-1003"}'
    )
    assert outcome.output["decision"] == "decline"


def test_loans_unknown_application_fails_the_goal(capsys: pytest.CaptureFixture[str]) -> None:
    """An application that is not on file fails the goal: exit status 1, the reason shown."""
    status, out, _ = run(capsys, "loans", "Process application A-9999")
    assert status == 1
    assert out.startswith("loans: FAILED in ")
    assert "Fatal: no application A-9999 on file (on file: A-1001, A-1002, A-1003)" in out


async def test_loans_compliance_loads_its_rules_once_in_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stateful compliance agent reads the rules file when the tree starts, not per task."""
    loans = example("loans")
    loaded: list[str] = []
    load = loans._load

    async def counting(name: str) -> Any:
        loaded.append(name)
        return await load(name)

    monkeypatch.setattr(loans, "_load", counting)
    async with loans.tree.running() as runner:
        assert loaded == ["lending_rules.json"]
        for application in ("A-1001", "A-1002", "A-1003"):
            handle = await runner.submit(f"Process application {application}")
            assert (await handle.outcome()).ok
    assert loaded.count("lending_rules.json") == 1


# -- research ---------------------------------------------------------------------------


def test_research_fans_out_over_every_competitor(capsys: pytest.CaptureFixture[str]) -> None:
    """Research fans out over every competitor on file; the report ranks them and plans."""
    outcome = outcome_of(capsys, "research", example("research").GOAL)
    analyst = records(outcome, "research/analyst")
    desk = records(outcome, "research/analyst/desk")
    for item in range(3):
        assert analyst[f"research[{item}]"].agent == "research/analyst/desk"
        assert desk[f"research[{item}]"].agent == "research/analyst/desk/researcher"
    assert {"scope", "summary", "plan"} <= set(analyst)
    assert outcome.output == {
        "title": "Competitive analysis: task tracking for small teams",
        "headline": "Boardwalk is the biggest threat: growing 41% a year at $6 a seat.",
        "ranking": [
            {"name": "Boardwalk", "threat": "high", "growth": 0.41, "price_per_seat": 6},
            {"name": "Trellis", "threat": "medium", "growth": 0.18, "price_per_seat": 10},
            {"name": "Taskforge", "threat": "low", "growth": 0.07, "price_per_seat": 14},
        ],
        "priorities": [
            "Win Boardwalk users who need automations",
            "Win Boardwalk users who need time tracking",
            "Answer Boardwalk on price: a starter tier at $6 a seat",
            "Win Trellis users who need offline mode",
            "Close the gap on integrations (Trellis leads)",
        ],
    }


def test_research_covers_the_competitors_named_in_the_goal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Competitors named in the goal limit the fan-out to them."""
    outcome = outcome_of(capsys, "research", "Compare us with Trellis and Taskforge")
    assert [entry["name"] for entry in outcome.output["ranking"]] == ["Trellis", "Taskforge"]
    assert sorted(k for k in records(outcome, "research/analyst") if k.startswith("research")) == [
        "research[0]",
        "research[1]",
    ]


def test_research_competitors_come_from_the_input(capsys: pytest.CaptureFixture[str]) -> None:
    """``--input '{"competitors": [...]}'`` is the list to fan out over."""
    outcome = outcome_of(capsys, "research", "Analyse", "--input", '{"competitors": ["Taskforge"]}')
    assert outcome.output["headline"] == (
        "Taskforge is the biggest threat: growing 7% a year at $14 a seat."
    )


def test_research_unknown_competitor_fails_the_goal(capsys: pytest.CaptureFixture[str]) -> None:
    """A competitor with no facts on file fails the goal before any research starts."""
    status, out, _ = run(capsys, "research", "Analyse", "--input", '{"competitors": ["Acme"]}')
    assert status == 1
    assert "Fatal: no facts on file for Acme" in out
    assert "research[" not in out
