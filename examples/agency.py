"""The lead hand-off: marketing qualified a lead, sales follows up.

A strategic ``director`` plans three steps for the lead's account:

1. ``history`` — fetch the account's CRM history. The sales team routes it to the
   primary CRM first; that CRM is down (it refuses every connection), so after its
   retries the team *reassigns* the step to the backup CRM, a nightly replica.
2. ``email`` — draft the follow-up email. This is a *review point*: a person approves,
   rejects with feedback (the mailer re-drafts with it) or edits the draft.
3. ``call`` — book a follow-up call in the account owner's calendar.

Everything runs offline from ``data/crm.json`` and ``data/calendar.json``::

    overstory run examples/agency.py:tree "Qualify lead ACME and book a follow-up call"
    overstory run examples/agency.py:tree "Follow up" --input '{"account": "GLOBEX"}'

The account is ``input["account"]`` if given, else the first known account named in
the goal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import trio
import trio.lowlevel

import overstory as ov

GOAL = "Qualify lead ACME and book a follow-up call"

DATA = trio.Path(__file__).parent / "data"


async def _load(name: str) -> Any:
    return json.loads(await (DATA / name).read_text(encoding="utf-8"))


def _account_key(ctx: ov.Context, accounts: Mapping[str, Any]) -> str:
    """The account the goal is about: ``input["account"]``, else one named in the goal."""
    wanted = ctx.task.input.get("account") if isinstance(ctx.task.input, dict) else None
    if wanted is None:
        words = set(re.findall(r"[A-Za-z0-9]+", ctx.goal.upper()))
        wanted = next((key for key in accounts if key in words), None)
    if wanted is None or str(wanted).upper() not in accounts:
        known = ", ".join(accounts)
        raise ov.Fatal(f"no known account in this goal (known accounts: {known})")
    return str(wanted).upper()


# -- the sales team ---------------------------------------------------------------------


@ov.leaf(skills={"crm"})
async def crm_primary(task: ov.Task, ctx: ov.Context) -> Any:
    """Primary CRM: live account records and activity history."""
    await trio.lowlevel.checkpoint()  # a network call, in real life
    # The primary CRM is down today: every call fails the same way, so the team's
    # retries run out and the step is reassigned to the backup.
    raise ConnectionError("crm-primary.internal:443: connection refused")


@ov.leaf(skills={"crm"})
async def crm_backup(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Backup CRM: account records and history from the nightly replica."""
    accounts = (await _load("crm.json"))["accounts"]
    key = _account_key(ctx, accounts)
    account = accounts[key]
    return {
        "account": key,
        "company": account["company"],
        "stage": account["stage"],
        "owner": account["owner"],
        "contact": account["contact"],
        "history": account["history"],
        "source": "crm-backup (nightly replica)",
    }


@ov.leaf(skills={"email"})
async def mailer(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Drafts outreach emails from an account's history."""
    history = ctx.outputs["history"]
    contact = history["contact"]
    last = history["history"][-1]
    first_name = contact["name"].split()[0]
    body = [
        f"Hi {first_name},",
        "",
        f"Thanks for your interest — I saw your note from {last['date']}: {last['note'].lower()}.",
        f"I'd love to walk you through how {history['company']} could use us, "
        "and answer any questions.",
        "",
        "Would a 30-minute call next week work for you?",
        "",
        "Best regards,",
        "The sales team",
    ]
    draft: dict[str, Any] = {
        "to": contact["email"],
        "subject": f"Following up: {last['note']}",
        "body": "\n".join(body),
    }
    if ctx.feedback:
        # A reviewer rejected an earlier draft: this draft takes every note into account.
        draft["revised_for"] = list(ctx.feedback)
    return draft


# -- scheduling -------------------------------------------------------------------------


@ov.leaf(skills={"calendar"})
async def calendar(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Books meetings in the account owner's calendar."""
    reps = (await _load("calendar.json"))["reps"]
    history, email = ctx.outputs["history"], ctx.outputs["email"]
    rep = reps[history["owner"]]
    if not rep["free"]:
        raise ov.Fatal(f"{rep['name']} has no free slot")
    return {
        "when": rep["free"][0],
        "with": history["contact"]["name"],
        "host": rep["name"],
        "invite": email["subject"],
    }


async def hand_off(outputs: Mapping[str, Any], task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """The director's output: what sales needs to pick the lead up."""
    history = outputs["history"]
    return {
        "account": history["account"],
        "contact": history["contact"],
        "email": outputs["email"],
        "call": outputs["call"],
    }


tree = ov.Tree(
    "agency",
    ov.Strategic(
        "director",
        "Hands qualified leads from marketing to sales",
        plan=[
            ov.Step("history", "Fetch the account's CRM history", skills={"crm"}),
            ov.Step(
                "email",
                "Draft a follow-up email to the lead",
                after=["history"],
                skills={"email"},
                review=True,
            ),
            ov.Step(
                "call",
                "Book a follow-up call with the lead",
                after=["history", "email"],
                skills={"calendar"},
            ),
        ],
        aggregate=hand_off,
        children=[
            ov.Tactical(
                "sales",
                "CRM records and outreach",
                children=[crm_primary, crm_backup, mailer],
                retry=ov.Retry(attempts=3, backoff=ov.Backoff(initial=0.001, cap=0.01)),
            ),
            ov.Tactical("scheduling", "Meetings and calendars", children=[calendar]),
        ],
    ),
)


if __name__ == "__main__":
    outcome = trio.run(lambda: tree.run(GOAL, reviewer=ov.auto_approve))
    print(outcome.status.value, ov.to_json(outcome.output, indent=2))
