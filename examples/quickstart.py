"""The README's quickstart, runnable: ``python examples/quickstart.py``."""

from typing import Any

import trio

import overstory as ov


@ov.leaf(description="Looks up an account's history in the CRM", skills={"crm"})
async def crm_history(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    return {"account": task.input["account"], "orders": 12}


class Mailer(ov.Agent):
    """Drafts and sends customer emails."""  # the description used for routing

    skills = {"email"}

    async def start(self) -> None:  # open clients, load models
        self.signature = "-- the sales team"

    async def handle(self, task: ov.Task, ctx: ov.Context) -> str:
        history = ctx.outputs["history"]  # outputs of the steps it depends on
        return f"Dear {history['account']}, thanks for {history['orders']} orders. {self.signature}"


@ov.leaf(description="Books calls and meetings in the calendar")
async def book_call(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    return {"booked": True}


tree = ov.Tree(
    "agency",
    ov.Strategic(
        "director",
        plan=[
            ov.Step("history", "Look up the account's history"),
            ov.Step("email", "Draft the follow-up email", after=["history"], review=True),
            ov.Step("call", "Book a follow-up call", after=["email"]),
        ],
        children=[
            ov.Tactical(
                "sales",
                "CRM research and customer email",
                children=[crm_history, Mailer],
                retry=ov.Retry(attempts=3, backoff=ov.Backoff(initial=0.1, cap=5.0)),
                intensity=ov.Intensity(max_failures=5, within=60.0),
                timeout=30.0,
            ),
            ov.Tactical("scheduling", "Books calls and meetings", children=[book_call]),
        ],
    ),
)


async def main() -> None:
    outcome = await tree.run(
        "Follow up with ACME", input={"account": "ACME"}, reviewer=ov.auto_approve
    )
    print(outcome.status, outcome.output["email"])


if __name__ == "__main__":
    trio.run(main)
