"""Semantic 1: a tree is validated when it is built, and errors name the node path."""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import overstory as ov


@ov.leaf(description="does things")
async def worker(task: ov.Task, ctx: ov.Context) -> None:
    return None


@ov.leaf(description="does other things")
async def other(task: ov.Task, ctx: ov.Context) -> None:
    return None


def build(**strategic: Any) -> ov.Tree:
    strategic.setdefault(
        "children",
        [ov.Tactical("sales", "sells", children=[worker]), ov.Tactical("ops", children=[other])],
    )
    return ov.Tree("agency", ov.Strategic("director", **strategic))


def test_valid_tree_builds_and_walks_in_declared_order() -> None:
    """A valid tree builds; walk() visits nodes depth first in declared order."""
    tree = build(plan=[ov.Step("a", "do a", to="sales/worker"), ov.Step("b", "do b", after="a")])
    assert [n.path for n in tree.walk()] == [
        "agency/director",
        "agency/director/sales",
        "agency/director/sales/worker",
        "agency/director/ops",
        "agency/director/ops/other",
    ]
    assert tree.find("agency/director/ops").layer is ov.Layer.TACTICAL
    assert tree.find("agency/director/sales").skills == frozenset()


@pytest.mark.parametrize(
    ("kwargs", "path", "problem"),
    [
        (
            {
                "children": [
                    ov.Tactical("sales", children=[worker]),
                    ov.Tactical("sales", children=[other]),
                ]
            },
            "agency/director",
            "duplicate child name 'sales'",
        ),
        ({"children": [ov.Tactical("sales", children=[])]}, "agency/director/sales", "empty team"),
        ({"children": []}, "agency/director", "empty team"),
        (
            {"plan": [ov.Step("a", "x", to="legal")]},
            "agency/director",
            "routed to 'legal', which is not a child",
        ),
        (
            {"plan": [ov.Step("a", "x", to="sales/nobody")]},
            "agency/director",
            "names no node below this supervisor",
        ),
        ({"plan": [ov.Step("a", "x", after=["z"])]}, "agency/director", "unknown step 'z'"),
        ({"plan": [ov.Step("a", "x", after=["a"])]}, "agency/director", "depends on itself"),
        (
            {"plan": [ov.Step("a", "x", after=["b"]), ov.Step("b", "y", after=["a"])]},
            "agency/director",
            "dependency cycle among 'a' -> 'b' -> 'a'",
        ),
        ({"plan": [ov.Step("a", "x"), ov.Step("a", "y")]}, "agency/director", "duplicate step"),
        ({"plan": []}, "agency/director", "the plan has no steps"),
        ({"plan": [ov.Step("a", "")]}, "agency/director", "non-empty goal"),
        ({"plan": [ov.Step("a b", "x")]}, "agency/director", "step name 'a b' is not valid"),
        (
            {"plan": [ov.Step("a", "x", for_each="b")]},
            "agency/director",
            "fans out over 'b'",
        ),
        ({"plan": "not a plan"}, "agency/director", "plan item 0 is not an ov.Step"),
        ({"router": lambda r, c: []}, "agency/director", "router must be an async callable"),
    ],
)
def test_invalid_definitions_name_the_path(kwargs: dict[str, Any], path: str, problem: str) -> None:
    """Each kind of bad definition raises DefinitionError naming the node and the problem."""
    with pytest.raises(ov.DefinitionError) as info:
        build(**kwargs)
    assert info.value.path == path
    assert problem in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


def test_plain_function_child_is_refused_with_path() -> None:
    """A sync function is not a leaf: the error names its path and says to make it async."""

    def sync_leaf(task: ov.Task, ctx: ov.Context) -> None:
        return None

    with pytest.raises(ov.DefinitionError, match=r"agency/director/sales/sync_leaf: .*async def"):
        build(children=[ov.Tactical("sales", children=[sync_leaf])])


def test_non_callable_child_is_refused_with_index() -> None:
    """Something that is not an agent at all is refused, naming its position."""
    with pytest.raises(ov.DefinitionError, match=r"agency/director/sales \(child 1\)"):
        build(children=[ov.Tactical("sales", children=[worker, 42])])


def test_agent_without_handle_is_refused() -> None:
    """An ov.Agent subclass must implement handle()."""

    class Lazy(ov.Agent):
        """Does nothing."""

    with pytest.raises(ov.DefinitionError, match=r"agency/director/sales/Lazy: .*handle\(\)"):
        build(children=[ov.Tactical("sales", children=[Lazy])])


def test_agent_with_sync_handle_is_refused() -> None:
    """An agent's handle must be async def."""

    class Sync(ov.Agent):
        """Sync."""

        def handle(self, task: ov.Task, ctx: ov.Context) -> None:  # type: ignore[override]
            return None

    with pytest.raises(ov.DefinitionError, match=r"Sync.handle must be async def"):
        build(children=[ov.Tactical("sales", children=[Sync])])


def test_agent_with_bad_settings_is_refused_with_path() -> None:
    """Nonsense agent settings (concurrency 0) are refused naming the agent's path."""

    class Zero(ov.Agent):
        """None at all."""

        concurrency = 0

        async def handle(self, task: ov.Task, ctx: ov.Context) -> None:
            return None

    with pytest.raises(ov.DefinitionError, match=r"agency/director/sales/Zero: .*concurrency"):
        build(children=[ov.Tactical("sales", children=[Zero])])


async def _work(task: ov.Task, ctx: ov.Context) -> None:
    return None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ov.Retry(attempts=0), "Retry.attempts must be a whole number at least 1, got 0"),
        (lambda: ov.Retry(attempts=1.5), "Retry.attempts must be a whole number"),
        (lambda: ov.Backoff(initial=-1), "Backoff.initial must be a finite number >= 0"),
        (lambda: ov.Backoff(initial=2, cap=1), "Backoff.cap (1) must not be below initial (2)"),
        (lambda: ov.Backoff(jitter=2), "Backoff.jitter must be between 0 and 1"),
        (lambda: ov.Intensity(within=0), "Intensity.within must be a positive number"),
        (lambda: ov.Intensity(max_failures=-1), "Intensity.max_failures must be a whole number"),
        (lambda: ov.Intensity(max_failures=math.nan), "Intensity.max_failures must be a whole"),
        (lambda: ov.Breaker(failures=math.nan), "Breaker.failures must be a whole number"),
        (lambda: ov.Budget(tokens=math.nan), "Budget.tokens must be a whole number"),
        (lambda: ov.Budget(cost=math.nan), "Budget.cost must be a number at least 0, got nan"),
        (lambda: ov.Budget(attempts=1.5), "Budget.attempts must be a whole number"),
        (lambda: ov.Backoff(multiplier=math.nan), "Backoff.multiplier must be a number"),
        (lambda: ov.Step("s", "g", max_parallel=math.nan), "Step.max_parallel must be a whole"),
        (lambda: ov.leaf(concurrency=2.5)(_work), "concurrency must be a whole number"),
        (lambda: ov.Breaker(cooldown=-5), "Breaker.cooldown must be a positive number"),
        (lambda: ov.Tactical("t", children=[worker], timeout=-1), "Tactical.timeout"),
        (lambda: ov.Tactical("t", children=[worker], max_parallel=0), "Tactical.max_parallel"),
        (lambda: ov.Tactical("t", children=[worker], strategy="one_for_some"), "strategy must be"),
        (
            lambda: ov.Tactical("t", children=[worker], retry=3),
            "Tactical.retry must be an ov.Retry",
        ),
        (lambda: ov.Retry(fatal=(int,)), "Retry.fatal must list Exception subclasses"),
        (lambda: ov.Budget(tokens=-1), "Budget.tokens"),
    ],
)
def test_nonsense_policies_are_refused(make: Any, message: str) -> None:
    """Policies reject nonsense values when constructed, naming class, field and value."""
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_leaf_decorator_refuses_sync_function() -> None:
    """@ov.leaf on a plain function fails at decoration time."""
    with pytest.raises(TypeError, match="async function"):

        @ov.leaf  # type: ignore[arg-type]
        def plain(task: ov.Task, ctx: ov.Context) -> None:
            return None


def test_tree_name_is_validated() -> None:
    """The tree's own name must be a valid path segment."""
    with pytest.raises(ov.DefinitionError, match="tree name 'a/b' is not valid"):
        ov.Tree("a/b", ov.Tactical("t", children=[worker]))


def test_root_must_be_a_supervisor() -> None:
    """The root of a tree is a supervisor, not a leaf."""
    with pytest.raises(ov.DefinitionError, match=r"root must be an ov\.Strategic or ov\.Tactical"):
        ov.Tree("t", worker)  # type: ignore[arg-type]


def test_supervisors_nest_to_any_depth() -> None:
    """Supervisors nest: a tactical under a tactical under a strategic under a strategic."""
    inner = ov.Tactical("t2", children=[worker])
    tree = ov.Tree(
        "deep",
        ov.Strategic(
            "s1", children=[ov.Strategic("s2", children=[ov.Tactical("t1", children=[inner])])]
        ),
    )
    assert tree.find("deep/s1/s2/t1/t2/worker").layer is ov.Layer.LEAF


# -- plan validation as a property ---------------------------------------------------------


@st.composite
def random_plans(draw: st.DrawFn) -> list[ov.Step]:
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True))
    steps = []
    for name in names:
        after = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        steps.append(ov.Step(name, f"do {name}", after=after))
    return steps


def _has_cycle(steps: list[ov.Step]) -> bool:
    graph = {s.name: set(s.after) for s in steps}
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        if state.get(node) == 1:
            return True
        if state.get(node) == 2:
            return False
        state[node] = 1
        found = any(visit(d) for d in graph[node])
        state[node] = 2
        return found

    return any(visit(n) for n in graph)


@given(random_plans())
def test_plan_validation_accepts_exactly_the_dags(steps: list[ov.Step]) -> None:
    """A random plan is accepted iff it has no self-loop or cycle; the returned order puts
    every step after its dependencies and keeps the given order where it can."""
    from overstory.hierarchy._plan import validate_plan

    cyclic = _has_cycle(steps)
    if cyclic:
        with pytest.raises(ValueError, match=r"cycle|depends on itself"):
            validate_plan(steps, {"team"})
        return
    order = validate_plan(steps, {"team"})
    position = {s.name: i for i, s in enumerate(order)}
    assert sorted(position) == sorted(s.name for s in steps)
    for step in steps:
        for dependency in step.after:
            assert position[dependency] < position[step.name]
    if all(not s.after for s in steps):
        assert [s.name for s in order] == [s.name for s in steps]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrent": 0}, "max_concurrent must be a whole number at least 1, got 0"),
        ({"max_concurrent": 2.5}, "max_concurrent must be a whole number at least 1, got 2.5"),
        ({"max_concurrent": math.nan}, "max_concurrent must be a whole number"),
        ({"grace": -1}, "grace must be a number of seconds at least 0, got -1"),
        ({"grace": math.nan}, "grace must be a number of seconds at least 0, got nan"),
    ],
)
async def test_running_refuses_nonsense_options(options: dict[str, Any], message: str) -> None:
    """running() refuses a max_concurrent that is not a whole number >= 1 and a grace
    that is not a number of seconds >= 0, naming the option, before starting anything."""
    tree = ov.Tree("t", ov.Tactical("team", children=[ov.leaf(_work)]))
    with pytest.raises(ValueError, match=re.escape(message)):
        async with tree.running(**options):
            pass


async def test_a_partial_and_an_async_callable_object_are_leaves() -> None:
    """A functools.partial of an async function and an object with an async __call__
    are leaves named after the function and the class."""

    async def greet(task: ov.Task, ctx: ov.Context, *, suffix: str) -> str:
        return "hello" + suffix

    class Echo:
        """Says the input back."""

        async def __call__(self, task: ov.Task, ctx: ov.Context) -> object:
            return task.input

    tree = ov.Tree(
        "t", ov.Tactical("team", children=[functools.partial(greet, suffix="!"), Echo()])
    )
    assert [node.path for node in tree.walk()][-2:] == ["t/team/greet", "t/team/Echo"]
    named = ov.leaf(functools.partial(greet, suffix="?"))
    assert named.name == "greet"
    outcome = await tree.run("say hello", input="x")
    assert outcome.ok
