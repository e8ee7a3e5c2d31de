"""Loan processing: three checks in parallel, then one decision.

The strategic ``underwriting`` supervisor plans four steps for an application:
``data`` (the applicant's finances), ``fraud`` (fraud signals) and ``compliance`` (the
lending rules) have no dependencies, so they run in parallel; ``decision`` runs after
all three and sees their outputs in ``ctx.outputs``.

``Compliance`` is a stateful ``ov.Agent``: it loads the lending rules once, in
``start()``, when the tree starts, and checks every application against them.

Everything runs offline from ``data/applications.json`` and ``data/lending_rules.json``::

    overstory run examples/loans.py:tree "Process application A-1001"   # approve
    overstory run examples/loans.py:tree "Process application A-1002"   # refer
    overstory run examples/loans.py:tree "Process application A-1003"   # decline
    overstory run examples/loans.py:tree "Process" --input '{"application": "A-1002"}'

The application is ``input["application"]`` if given, else the id (``A-1234``) in the
goal. An unknown application fails the goal (exit status 1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import trio

import overstory as ov

GOAL = "Process application A-1001"

DATA = trio.Path(__file__).parent / "data"


async def _load(name: str) -> Any:
    return json.loads(await (DATA / name).read_text(encoding="utf-8"))


async def _application(ctx: ov.Context) -> tuple[str, dict[str, Any]]:
    """The application the goal is about, by ``input["application"]`` or by the goal."""
    applications = (await _load("applications.json"))["applications"]
    given = ctx.task.input.get("application") if isinstance(ctx.task.input, dict) else None
    found = re.search(r"\bA-\d{4}\b", ctx.goal)
    key = given or (found.group() if found else None)
    if key is None:
        raise ov.Fatal("no application id (A-1234) in the goal or in input['application']")
    if key not in applications:
        raise ov.Fatal(f"no application {key} on file (on file: {', '.join(applications)})")
    return key, applications[key]


def _monthly_payment(application: Mapping[str, Any]) -> float:
    # Principal only: good enough to compare affordability between applications.
    amount: float = application["amount"]
    term: int = application["term_months"]
    return round(amount / term, 2)


def _debt_to_income(application: Mapping[str, Any]) -> float:
    debts: float = application["debt_payments_monthly"] + _monthly_payment(application)
    income: float = application["income_monthly"]
    return round(debts / income, 3)


# -- intake -----------------------------------------------------------------------------


@ov.leaf
async def applicant_data(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Gathers an applicant's financial data: income, debts, credit score."""
    key, application = await _application(ctx)
    return {
        "application": key,
        "applicant": application["applicant"]["name"],
        "amount": application["amount"],
        "term_months": application["term_months"],
        "credit_score": application["credit_score"],
        "monthly_payment": _monthly_payment(application),
        "debt_to_income": _debt_to_income(application),
    }


# -- risk -------------------------------------------------------------------------------


@ov.leaf
async def fraud_screen(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Scores an application's fraud signals."""
    _, application = await _application(ctx)
    signals = application["signals"]
    flags: list[str] = []
    if signals["address_mismatch"]:
        flags.append("address does not match the credit file")
    if signals["applications_last_30_days"] > 3:
        flags.append(f"{signals['applications_last_30_days']} applications in 30 days")
    if signals["email_age_days"] < 30:
        flags.append(f"email address is {signals['email_age_days']} days old")
    if signals["device_seen_on_other_applications"]:
        flags.append("device seen on other applicants' applications")
    if not application["applicant"]["id_verified"]:
        flags.append("identity not verified")
    score = min(100, 25 * len(flags))
    risk = "high" if score >= 50 else "medium" if score >= 25 else "low"
    return {"score": score, "risk": risk, "flags": flags}


class Compliance(ov.Agent):
    """Checks applications against the lending rules."""

    name = "compliance"

    rules: dict[str, Any]

    async def start(self) -> None:
        # Loaded once per instance, when the tree starts; every task reuses them.
        self.rules = await _load("lending_rules.json")

    async def handle(self, task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
        _, application = await _application(ctx)
        rules = self.rules
        dti = _debt_to_income(application)
        # (rule, passed, hard): a failed hard rule declines, a failed soft rule refers.
        checks = [
            ("credit score", application["credit_score"] >= rules["min_credit_score"], True),
            ("amount", application["amount"] <= rules["max_amount"], True),
            ("term", application["term_months"] <= rules["max_term_months"], True),
            ("purpose", application["purpose"] not in rules["restricted_purposes"], True),
            (
                "identity",
                application["applicant"]["id_verified"]
                or not rules["identity_verification_required"],
                True,
            ),
            ("debt to income", dti <= rules["max_debt_to_income"], False),
            ("employment", application["employment_years"] >= rules["min_employment_years"], False),
        ]
        apr = next(
            row["apr"]
            for row in rules["rate_table"]
            if application["credit_score"] >= row["min_score"]
        )
        return {
            "rules": rules["version"],
            "failed_hard": [name for name, passed, hard in checks if hard and not passed],
            "failed_soft": [name for name, passed, hard in checks if not hard and not passed],
            "apr": apr,
        }


# -- the decision -----------------------------------------------------------------------


@ov.leaf
async def decide(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Decides an application from its data, fraud screen and compliance checks."""
    data, fraud, compliance = (ctx.outputs[name] for name in ("data", "fraud", "compliance"))
    reasons: list[str] = []
    if fraud["risk"] == "high":
        reasons.append(f"fraud risk high: {'; '.join(fraud['flags'])}")
    if compliance["failed_hard"]:
        reasons.append(f"fails lending rules: {', '.join(compliance['failed_hard'])}")
    if reasons:
        decision = "decline"
    elif compliance["failed_soft"] or fraud["risk"] == "medium":
        decision = "refer"
        reasons.extend(f"needs an underwriter: {name}" for name in compliance["failed_soft"])
        if fraud["risk"] == "medium":
            reasons.append(f"fraud risk medium: {'; '.join(fraud['flags'])}")
    else:
        decision = "approve"
        reasons.append(f"meets lending rules {compliance['rules']}, fraud risk {fraud['risk']}")
    result: dict[str, Any] = {
        "application": data["application"],
        "applicant": data["applicant"],
        "decision": decision,
        "reasons": reasons,
        "debt_to_income": data["debt_to_income"],
        "fraud_score": fraud["score"],
    }
    if decision == "approve":
        result["offer"] = {
            "amount": data["amount"],
            "term_months": data["term_months"],
            "apr": compliance["apr"],
        }
    return result


async def decision_only(
    outputs: Mapping[str, Any], task: ov.Task, ctx: ov.Context
) -> dict[str, Any]:
    """The supervisor's output is the decision (the checks are in the step records)."""
    decision: dict[str, Any] = outputs["decision"]
    return decision


tree = ov.Tree(
    "loans",
    ov.Strategic(
        "underwriting",
        "Processes loan applications",
        plan=[
            ov.Step("data", "Gather the applicant's financial data", to="intake"),
            ov.Step("fraud", "Screen the application for fraud", to="risk/fraud_screen"),
            ov.Step("compliance", "Check the application against the rules", to="risk/compliance"),
            ov.Step(
                "decision",
                "Decide: approve, refer to an underwriter, or decline",
                after=["data", "fraud", "compliance"],
                to="decide",
            ),
        ],
        aggregate=decision_only,
        children=[
            ov.Tactical("intake", "Applicant data", children=[applicant_data]),
            ov.Tactical("risk", "Fraud and compliance checks", children=[fraud_screen, Compliance]),
            decide,
        ],
    ),
)


if __name__ == "__main__":
    outcome = trio.run(tree.run, GOAL)
    print(outcome.status.value, ov.to_json(outcome.output, indent=2))
