"""A competitive-analysis report: fan out over the competitors, summarise, plan.

The strategic ``analyst`` plans four steps:

1. ``scope`` — decide which competitors to analyse: ``input["competitors"]`` if given,
   else the competitors named in the goal, else every competitor on file.
2. ``research`` — *fans out* over ``scope.competitors``: one task per competitor, in
   parallel; the step's output is the list of their profiles.
3. ``summary`` — rank the competitors by threat and write the headline.
4. ``plan`` — where to compete and what to build.

Routing is by skills: each step asks for one, and each team's members declare theirs.
Everything runs offline from ``data/competitors.json``::

    overstory run examples/research.py:tree "Write a competitive analysis of our market"
    overstory run examples/research.py:tree "Compare us with Trellis and Boardwalk"
    overstory run examples/research.py:tree "Analyse" --input '{"competitors": ["Taskforge"]}'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import trio

import overstory as ov

GOAL = "Write a competitive analysis of our market"

DATA = trio.Path(__file__).parent / "data"


async def _load(name: str) -> Any:
    return json.loads(await (DATA / name).read_text(encoding="utf-8"))


def _threat(profile: Mapping[str, Any]) -> str:
    if profile["growth"] >= 0.25 or profile["cheaper_than_us"]:
        return "high"
    return "medium" if profile["growth"] >= 0.1 else "low"


# -- the research desk ------------------------------------------------------------------


@ov.leaf(skills={"scoping"})
async def scoper(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Picks the competitors a report covers."""
    facts = await _load("competitors.json")
    on_file: list[str] = list(facts["competitors"])
    given = ctx.task.input.get("competitors") if isinstance(ctx.task.input, dict) else None
    if given is not None:
        unknown = [name for name in given if name not in on_file]
        if unknown:
            raise ov.Fatal(f"no facts on file for {', '.join(unknown)} (on file: {on_file})")
        chosen = list(given)
    else:
        words = {word.lower() for word in re.findall(r"\w+", ctx.goal)}
        chosen = [name for name in on_file if name.lower() in words] or on_file
    return {"market": facts["market"], "competitors": chosen}


@ov.leaf(skills={"research"})
async def researcher(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Researches one competitor: pricing, customers, growth, strengths, weaknesses."""
    facts = await _load("competitors.json")
    name = task.input
    competitor = facts["competitors"][name]
    ours = facts["us"]["price_per_seat"]
    profile: dict[str, Any] = {
        "name": name,
        "price_per_seat": competitor["price_per_seat"],
        "cheaper_than_us": competitor["price_per_seat"] < ours,
        "customers": competitor["customers"],
        "growth": competitor["growth"],
        "strengths": competitor["strengths"],
        "weaknesses": competitor["weaknesses"],
    }
    profile["threat"] = _threat(profile)
    return profile


# -- strategy ---------------------------------------------------------------------------

_THREAT_ORDER = {"high": 0, "medium": 1, "low": 2}


@ov.leaf(skills={"writing"})
async def summariser(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Summarises a market's competitors, biggest threat first."""
    profiles = sorted(
        ctx.outputs["research"], key=lambda p: (_THREAT_ORDER[p["threat"]], -p["growth"])
    )
    top = profiles[0]
    headline = (
        f"{top['name']} is the biggest threat: growing {top['growth']:.0%} a year "
        f"at ${top['price_per_seat']} a seat."
    )
    return {
        "headline": headline,
        "ranking": [
            {key: p[key] for key in ("name", "threat", "growth", "price_per_seat")}
            for p in profiles
        ],
    }


@ov.leaf(skills={"strategy"})
async def planner(task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """Plans where to compete and what to build next."""
    us = (await _load("competitors.json"))["us"]
    profiles = {p["name"]: p for p in ctx.outputs["research"]}
    actions: list[str] = []
    for entry in ctx.outputs["summary"]["ranking"]:
        profile = profiles[entry["name"]]
        for weakness in profile["weaknesses"]:
            for strength in us["strengths"]:
                if strength in weakness:
                    actions.append(f"Win {profile['name']} users who need {strength}")
        for strength in profile["strengths"]:
            for weakness in us["weaknesses"]:
                if strength in weakness:
                    actions.append(f"Close the gap on {strength} ({profile['name']} leads)")
        if profile["cheaper_than_us"] and profile["threat"] == "high":
            actions.append(
                f"Answer {profile['name']} on price: a starter tier at "
                f"${profile['price_per_seat']} a seat"
            )
    return {"priorities": actions}


async def report(outputs: Mapping[str, Any], task: ov.Task, ctx: ov.Context) -> dict[str, Any]:
    """The analyst's output: the report."""
    return {
        "title": f"Competitive analysis: {outputs['scope']['market']}",
        "headline": outputs["summary"]["headline"],
        "ranking": outputs["summary"]["ranking"],
        "priorities": outputs["plan"]["priorities"],
    }


tree = ov.Tree(
    "research",
    ov.Strategic(
        "analyst",
        "Writes competitive-analysis reports",
        plan=[
            ov.Step("scope", "Decide which competitors to analyse", skills={"scoping"}),
            ov.Step(
                "research",
                "Research one competitor: pricing, growth, strengths and weaknesses",
                after=["scope"],
                for_each="scope.competitors",
                skills={"research"},
            ),
            ov.Step(
                "summary",
                "Summarise the competitive landscape",
                after=["research"],
                skills={"writing"},
            ),
            ov.Step(
                "plan",
                "Plan where to compete and what to build",
                after=["research", "summary"],
                skills={"strategy"},
            ),
        ],
        aggregate=report,
        children=[
            ov.Tactical("desk", "Market research", children=[scoper, researcher]),
            ov.Tactical("strategy", "Summaries and plans", children=[summariser, planner]),
        ],
    ),
)


if __name__ == "__main__":
    outcome = trio.run(tree.run, GOAL)
    print(outcome.status.value, ov.to_json(outcome.output, indent=2))
