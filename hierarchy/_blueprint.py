"""Building a tree: validate every node once and resolve it into an immutable blueprint.

Every problem is raised as :class:`DefinitionError` naming the node's path, so a bad
tree fails when it is built, never halfway through a goal.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from overstory._errors import DefinitionError
from overstory.hierarchy._layer import Layer
from overstory.hierarchy._plan import check_name, validate_plan
from overstory.hierarchy._spec import SupervisorSpec
from overstory.leaves._agent import Agent, AgentSpec
from overstory.leaves._leaf import FunctionLeaf

__all__ = ["NodeDef", "build"]

NodeSpec = FunctionLeaf | AgentSpec | SupervisorSpec


@attrs.frozen(kw_only=True, eq=False)
class NodeDef:
    """A validated node: its path, what routing knows of it, and its resolved spec."""

    path: str
    name: str
    layer: Layer
    description: str
    skills: frozenset[str]
    timeout: float | None
    spec: NodeSpec
    children: tuple[NodeDef, ...] = ()
    #: ``layer.value``, kept as a plain string: the hot path reads it on every attempt.
    layer_name: str = attrs.field(init=False)

    @layer_name.default
    def _layer_name(self) -> str:
        return self.layer.value

    def walk(self) -> Iterator[NodeDef]:
        """This node and every node below it, depth first, in declared order."""
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def needs_review(self) -> bool:
        """Whether a static plan step or a supervisor below here asks for review."""
        for node in self.walk():
            spec = node.spec
            if isinstance(spec, SupervisorSpec) and (
                spec.review or any(step.review for step in spec.steps or ())
            ):
                return True
        return False


def _is_async_callable(value: Any) -> bool:
    return inspect.iscoroutinefunction(value) or (
        callable(value) and inspect.iscoroutinefunction(type(value).__call__)
    )


def build(parent: str, spec: Any) -> NodeDef:
    """Validate ``spec`` (a supervisor) and everything below it; ``parent`` is the tree path."""
    if not isinstance(spec, SupervisorSpec):
        raise DefinitionError(
            parent, f"the root must be an ov.Strategic or ov.Tactical, got {spec!r}"
        )
    return _supervisor(parent, spec)


def _supervisor(parent: str, spec: SupervisorSpec) -> NodeDef:
    path = _child_path(parent, spec.name, "supervisor")
    if not spec.children:
        raise DefinitionError(path, "empty team: a supervisor needs at least one child")
    children: list[NodeDef] = []
    names: set[str] = set()
    for index, child in enumerate(spec.children):
        node = _node(path, child, index)
        if node.name in names:
            raise DefinitionError(path, f"duplicate child name {node.name!r}")
        names.add(node.name)
        children.append(node)
    if spec.steps is not None:
        try:
            validate_plan(spec.steps, names, lambda route: resolves_route(children, route))
        except ValueError as exc:
            raise DefinitionError(path, f"invalid plan: {exc}") from None
    elif spec.plan is not None and not _is_async_callable(spec.plan):
        raise DefinitionError(
            path, f"plan must be a list of ov.Step or an async function, got {spec.plan!r}"
        )
    for label, hook in (("router", spec.router), ("aggregate", spec.aggregate)):
        if hook is not None and not _is_async_callable(hook):
            raise DefinitionError(path, f"{label} must be an async callable, got {hook!r}")
    skills = frozenset(spec.skills).union(*(c.skills for c in children))
    return NodeDef(
        path=path,
        name=spec.name,
        layer=spec.layer,
        description=spec.description,
        skills=skills,
        timeout=spec.timeout,
        spec=spec,
        children=tuple(children),
    )


def resolves_route(children: Iterable[NodeDef], route: str) -> bool:
    """Whether ``route`` (``team/agent``) names a node among ``children`` or below them."""
    first, _, rest = route.partition("/")
    node = next((child for child in children if child.name == first), None)
    if node is None:
        return False
    return not rest or resolves_route(node.children, rest)


def _child_path(parent: str, name: object, kind: str) -> str:
    if (problem := check_name(kind, name)) is not None:
        raise DefinitionError(parent, problem)
    return f"{parent}/{name}" if parent else str(name)


def _node(parent: str, child: Any, index: int) -> NodeDef:
    if isinstance(child, SupervisorSpec):
        return _supervisor(parent, child)
    if isinstance(child, type) and issubclass(child, Agent):
        try:
            child = AgentSpec.of(child)
        except (TypeError, ValueError) as exc:
            raise DefinitionError(f"{parent}/{child.__name__}", str(exc)) from None
    if isinstance(child, AgentSpec):
        path = _child_path(parent, child.name, "agent")
        if child.cls.handle is Agent.handle:
            raise DefinitionError(path, f"{child.cls.__name__} does not implement handle()")
        if not inspect.iscoroutinefunction(child.cls.handle):
            raise DefinitionError(path, f"{child.cls.__name__}.handle must be async def")
        for method in ("start", "stop"):
            if not inspect.iscoroutinefunction(getattr(child.cls, method)):
                raise DefinitionError(path, f"{child.cls.__name__}.{method} must be async def")
        return _leaf(path, child, child.timeout)
    if not isinstance(child, FunctionLeaf) and _is_async_callable(child):
        child = FunctionLeaf.from_function(child)
    if isinstance(child, FunctionLeaf):
        path = _child_path(parent, child.name, "leaf")
        if not _is_async_callable(child.fn):
            raise DefinitionError(path, f"leaf function {child.fn!r} is not async")
        return _leaf(path, child, child.timeout)
    name = getattr(child, "__name__", None)
    where = f"{parent}/{name}" if isinstance(name, str) else f"{parent} (child {index})"
    raise DefinitionError(
        where,
        "a child must be an async function, an @ov.leaf, an ov.Agent subclass or a "
        f"supervisor; got {child!r}"
        + (" (a plain def: make it async def)" if callable(child) else ""),
    )


def _leaf(path: str, spec: FunctionLeaf | AgentSpec, timeout: float | None) -> NodeDef:
    return NodeDef(
        path=path,
        name=spec.name,
        layer=Layer.LEAF,
        description=spec.description,
        skills=frozenset(spec.skills),
        timeout=timeout,
        spec=spec,
    )
