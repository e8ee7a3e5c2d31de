"""A customer-service desk: a model reads each specialist's description and routes the
customer's question to the best one; the specialist answers with tools and a structured
reply.

Offline, with the scripted model (no LLM needed)::

    python examples/support.py "I was charged twice this month"

Against any OpenAI-compatible endpoint, configured by the standard variables::

    OPENAI_API_KEY=sk-... SUPPORT_MODEL=gpt-4o-mini python examples/support.py "..."
    OPENAI_BASE_URL=http://localhost:11434/v1 SUPPORT_MODEL=llama3.2 \\
        python examples/support.py "The app crashes when I log in"        # Ollama
"""

from __future__ import annotations

import json
import os
import re
import sys

import attrs
import trio

import overstory as ov
from overstory.testing import ScriptedModel, tool_call

# -- what the specialists answer ---------------------------------------------------------


@attrs.frozen
class Answer:
    """The desk's reply to a customer."""

    reply: str = attrs.field(metadata={"description": "what to tell the customer"})
    escalate: bool = attrs.field(
        default=False, metadata={"description": "whether a human should follow up"}
    )


# -- tools: plain functions --------------------------------------------------------------

INVOICES = {"INV-1001": {"number": "INV-1001", "amount": 49.0, "charged": 2}}


def lookup_invoice(number: str) -> dict[str, object]:
    """Look up an invoice by its number (INV-...): amount and how often it was charged."""
    return INVOICES.get(number, {"number": number, "error": "no such invoice"})


def service_status(component: str) -> str:
    """The current status of a component of the service (app, api, login, payments)."""
    return "degraded: elevated login errors since 09:12 UTC" if component == "login" else "ok"


def find_account(email: str) -> dict[str, object]:
    """Find a customer account by e-mail address."""
    return {"email": email, "plan": "pro", "verified": True}


# -- the tree ------------------------------------------------------------------------------


def build(model: ov.Model) -> ov.Tree:
    """The desk, asking ``model`` for routing and answers."""
    billing = ov.llm_leaf(
        "billing",
        model=model,
        description="Billing: invoices, refunds, double charges, payment methods.",
        instructions="You are the billing specialist. Check invoices before promising refunds.",
        output=Answer,
        tools=[lookup_invoice],
    )
    technical = ov.llm_leaf(
        "technical",
        model=model,
        description="Technical support: error messages, crashes, login problems, outages.",
        instructions="You are the technical specialist. Check the service status first.",
        output=Answer,
        tools=[service_status],
    )
    account = ov.llm_leaf(
        "account",
        model=model,
        description="Account changes: e-mail address, password, plan, closing an account.",
        instructions="You are the account specialist. Find the account before changing it.",
        output=Answer,
        tools=[find_account],
    )
    return ov.Tree(
        "support",
        ov.Tactical(
            "desk",
            "Answers customers' questions.",
            router=ov.LLMRouter(model),
            retry=ov.Retry(attempts=2),
            children=[billing, technical, account],
        ),
        description="A customer-service desk routing questions to specialists by description.",
    )


# -- the scripted model: the same tree, offline ------------------------------------------

TOPICS = {
    "billing": r"charge|invoice|refund|bill|pay",
    "technical": r"error|crash|log ?in|down|slow|bug",
    "account": r"e-?mail|password|plan|close|account",
}


def _route(request: ov.ChatRequest) -> dict[str, list[str]]:
    step = request.prompt.split("\n", 1)[0].lower()
    ranking = [name for name, words in TOPICS.items() if re.search(words, step)]
    return {"ranking": ranking or ["account"]}


def _specialist(tool: str, arguments: dict[str, str], write: str) -> object:
    def reply(request: ov.ChatRequest) -> object:
        last = request.messages[-1]
        if last.role != "tool":
            return tool_call(tool, **arguments)
        return {"reply": write.format(**json.loads(last.content or "{}")), "escalate": False}

    return reply


def scripted() -> ScriptedModel:
    """A scripted model that plays router and specialists."""
    model = ScriptedModel("support-script")
    model.on(purpose="route", reply=_route)
    model.on(
        agent="billing",
        reply=_specialist(
            "lookup_invoice",
            {"number": "INV-1001"},
            "Invoice {number} was charged twice; we refunded {amount} to your card.",
        ),
    )
    model.on(
        agent="technical",
        reply=lambda r: (
            tool_call("service_status", component="login")
            if r.messages[-1].role != "tool"
            else {"reply": f"Known issue, being fixed: {r.messages[-1].content}", "escalate": False}
        ),
    )
    model.on(
        agent="account",
        reply=_specialist(
            "find_account",
            {"email": "you@example.com"},
            "Your {plan} account ({email}) is updated.",
        ),
    )
    return model


def choose_model() -> ov.Model:
    """An OpenAI-compatible endpoint when one is configured, else the scripted model."""
    if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        return ov.OpenAIModel(os.environ.get("SUPPORT_MODEL", "gpt-4o-mini"))
    return scripted()


tree = build(choose_model())


async def main(question: str) -> int:
    outcome = await tree.run(question, budget=ov.Budget(tokens=50_000, time=120))
    if not outcome.ok:
        print(f"{outcome.status.value}: {outcome.error}", file=sys.stderr)
        return 1
    answered = next(s.agent for s in outcome.steps if s.agent)
    print(f"[{answered}] {outcome.output.reply}")
    usage = outcome.usage.total
    print(f"({usage.calls} model calls, {usage.tokens} tokens)")
    return 0


if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or "I was charged twice for invoice INV-1001"
    sys.exit(trio.run(main, question))
