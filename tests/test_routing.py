"""Semantic 4: each step gets a ranked list of healthy candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
from support import Calls, failing_leaf

import overstory as ov

ROUTER = ov.LexicalRouter()


def candidates(*specs: tuple[str, str, tuple[str, ...]]) -> list[ov.Candidate]:
    return [
        ov.Candidate(name=n, description=d, skills=frozenset(s), layer=ov.Layer.LEAF)
        for n, d, s in specs
    ]


TEAM = candidates(
    ("crm_lookup", "Looks up an account's history in the CRM", ("crm",)),
    ("mailer", "Drafts and sends customer emails", ("email",)),
    ("scheduler", "Books calls and meetings in the calendar", ("calendar",)),
)


def test_lexical_ranking_by_description() -> None:
    """Without skills, BM25 over names and descriptions puts the best match first."""
    assert ROUTER.rank(ov.RouteRequest(goal="Draft the follow-up email"), TEAM)[0] == "mailer"
    assert ROUTER.rank(ov.RouteRequest(goal="Book a follow-up call"), TEAM) == ["scheduler"]
    assert ROUTER.rank(ov.RouteRequest(goal="Look up the account history"), TEAM)[0] == (
        "crm_lookup"
    )


def test_skills_filter_and_rank_first() -> None:
    """A step asking for skills ranks only children having them, most shared skills first."""
    team = candidates(
        ("a", "general helper", ("x",)),
        ("b", "general helper", ("x", "y")),
        ("c", "the perfect description for this step", ()),
    )
    request = ov.RouteRequest(goal="the perfect description for this step", skills=frozenset("xy"))
    assert ROUTER.rank(request, team) == ["b", "a"]


def test_no_relevant_child_falls_back_to_declared_order() -> None:
    """When nothing scores, every candidate is returned in declared order."""
    assert ROUTER.rank(ov.RouteRequest(goal="zzz qqq"), TEAM) == [
        "crm_lookup",
        "mailer",
        "scheduler",
    ]


def test_ties_keep_declared_order() -> None:
    """Equal scores keep the children's declared order (deterministic routing)."""
    team = candidates(("beta", "same words", ()), ("alfa", "same words", ()))
    assert ROUTER.rank(ov.RouteRequest(goal="same words"), team) == ["beta", "alfa"]


async def test_explicit_to_comes_first(autojump_clock: trio.abc.Clock) -> None:
    """A step with to= goes to that child first even if routing would pick another."""
    calls = Calls()
    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[
                failing_leaf("emailer", calls, fail=0, description="writes email"),
                failing_leaf("other", calls, fail=0, description="unrelated"),
            ],
            plan=[ov.Step("s", "write the email", to="other")],
        ),
    )
    outcome = await tree.run("go")
    assert outcome.ok
    assert calls.names() == ["other"]


async def test_routed_path_reaches_into_a_team(autojump_clock: trio.abc.Clock) -> None:
    """to="team/leaf" routes inside the team as well."""
    calls = Calls()
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("s", "anything", to="team/second")],
            children=[
                ov.Tactical(
                    "team",
                    children=[
                        failing_leaf("first", calls, fail=0),
                        failing_leaf("second", calls, fail=0),
                    ],
                )
            ],
        ),
    )
    assert (await tree.run("go")).ok
    assert calls.names() == ["second"]


async def test_custom_router_is_used_and_unknown_names_dropped(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A pluggable async router decides the order; names that are not candidates are ignored."""
    calls = Calls()
    seen: list[list[str]] = []

    async def backwards(request: ov.RouteRequest, cands: Sequence[ov.Candidate]) -> list[str]:
        seen.append([c.name for c in cands])
        return ["ghost", *reversed([c.name for c in cands])]

    tree = ov.Tree(
        "t",
        ov.Tactical(
            "team",
            children=[failing_leaf("a", calls, fail=0), failing_leaf("b", calls, fail=0)],
            router=backwards,
        ),
    )
    assert (await tree.run("go")).ok
    assert calls.names() == ["b"]
    assert seen == [["a", "b"]]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (LookupError("model offline"), "model offline"),
        (None, "not iterable"),
        (5, "not iterable"),
        ([["a"]], "unhashable"),
    ],
    ids=["raises", "None", "a number", "unhashable names"],
)
async def test_a_router_that_fails_fails_the_step_with_no_candidate(
    autojump_clock: trio.abc.Clock, answer: Any, problem: str
) -> None:
    """A router that raises, or whose answer is not a list of names, fails the step with
    NoCandidate naming the router and its error, not with an unexplained exception group."""

    async def nonsense(request: ov.RouteRequest, cands: Sequence[ov.Candidate]) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    calls = Calls()
    tree = ov.Tree(
        "t", ov.Tactical("team", children=[failing_leaf("a", calls, fail=0)], router=nonsense)
    )
    outcome = await tree.run("go")
    assert outcome.status is ov.Status.FAILED
    assert outcome.failures[-1].error_type == "NoCandidate"
    assert "the router failed" in outcome.failures[-1].message
    assert problem in outcome.failures[-1].message


async def test_unhealthy_children_are_ranked_out(autojump_clock: trio.abc.Clock) -> None:
    """An agent with no live instance is not offered to the router at all."""
    offered: list[list[str]] = []

    async def spy(request: ov.RouteRequest, cands: Sequence[ov.Candidate]) -> list[str]:
        offered.append([c.name for c in cands])
        return [c.name for c in cands]

    class Down(ov.Agent):
        """Never starts."""

        backoff = ov.Backoff(initial=100.0, cap=100.0)

        async def start(self) -> None:
            raise OSError("down")

        async def handle(self, task: ov.Task, ctx: ov.Context) -> Any:
            return "down"

    calls = Calls()
    tree = ov.Tree(
        "t",
        ov.Tactical("team", children=[Down, failing_leaf("up", calls, fail=0)], router=spy),
    )
    outcome = await tree.run("go", start_failure="continue")
    assert outcome.ok
    assert offered == [["up"]]


async def test_team_skills_include_members_skills(autojump_clock: trio.abc.Clock) -> None:
    """A strategic step asking for a skill goes to the team whose members have it."""
    calls = Calls()
    tree = ov.Tree(
        "t",
        ov.Strategic(
            "boss",
            plan=[ov.Step("s", "do it", skills="calendar")],
            children=[
                ov.Tactical(
                    "a", "a team", children=[failing_leaf("x", calls, fail=0, skills=("crm",))]
                ),
                ov.Tactical(
                    "b", "b team", children=[failing_leaf("y", calls, fail=0, skills=("calendar",))]
                ),
            ],
        ),
    )
    assert (await tree.run("go")).ok
    assert calls.names() == ["y"]


def test_tokenizer_splits_names_and_stems() -> None:
    """CamelCase and snake_case names split into words; plurals and -ing forms stem."""
    from overstory.hierarchy._routing import tokenize

    assert tokenize("CrmLookup books_meetings emails") == [
        "crm",
        "lookup",
        "book",
        "meeting",
        "email",
    ]
    assert tokenize("the and of") == []


def test_scores_are_positive_only_for_shared_terms() -> None:
    """A candidate sharing no term with the request scores exactly zero."""
    scores: dict[str, Any] = ROUTER.scores(ov.RouteRequest(goal="calendar meeting"), TEAM)
    assert scores["scheduler"] > 0
    assert scores["crm_lookup"] == 0.0
