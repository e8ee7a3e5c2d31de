"""Function leaves: a plain ``async def (task, ctx)`` that does one kind of work."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, overload

import attrs

from overstory._checks import at_least, optional_positive, to_skills
from overstory.hierarchy._context import Context
from overstory.hierarchy._task import Task

__all__ = ["FunctionLeaf", "LeafFunction", "leaf"]

LeafFunction = Callable[[Task, Context], Awaitable[Any]]


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring on one line: an agent's default description."""
    return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ") if doc else ""


@attrs.frozen(kw_only=True)
class FunctionLeaf:
    """A stateless leaf agent made from an async function.

    Calling it calls the function, so a decorated function stays testable on its own.
    ``concurrency`` limits how many calls run at once across all goals (``None``: no limit);
    ``timeout`` bounds each attempt.
    """

    fn: LeafFunction
    name: str
    description: str = ""
    skills: frozenset[str] = attrs.field(default=frozenset(), converter=to_skills)
    timeout: float | None = attrs.field(default=None, validator=optional_positive())
    concurrency: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(at_least(1, whole=True))
    )

    def __call__(self, task: Task, ctx: Context) -> Awaitable[Any]:
        return self.fn(task, ctx)

    @classmethod
    def from_function(cls, fn: LeafFunction) -> FunctionLeaf:
        """Wrap an undecorated async function: its name and docstring describe it."""
        return cls(fn=fn, name=callable_name(fn), description=first_paragraph(_doc(fn)))


def callable_name(fn: Callable[..., Any]) -> str:
    """The name a callable goes by: a function's own; a ``functools.partial``'s
    function's; an object's class's (an instance with an async ``__call__``)."""
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    if isinstance(fn, functools.partial):
        return callable_name(fn.func)
    return type(fn).__name__


def _doc(fn: Callable[..., Any]) -> str | None:
    if isinstance(fn, functools.partial):
        return _doc(fn.func)
    return getattr(fn, "__doc__", None) if hasattr(fn, "__name__") else type(fn).__doc__


@overload
def leaf(fn: LeafFunction, /) -> FunctionLeaf: ...
@overload
def leaf(
    *,
    name: str | None = None,
    description: str | None = None,
    skills: Iterable[str] = (),
    timeout: float | None = None,
    concurrency: int | None = None,
) -> Callable[[LeafFunction], FunctionLeaf]: ...
def leaf(
    fn: LeafFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    skills: Iterable[str] = (),
    timeout: float | None = None,
    concurrency: int | None = None,
) -> FunctionLeaf | Callable[[LeafFunction], FunctionLeaf]:
    """Make an async function a leaf agent; use as ``@leaf`` or ``@leaf(description=...)``.

    The description defaults to the first paragraph of the docstring and the name to the
    function's name. Raises ``TypeError`` at once when ``fn`` is not an async function.
    """

    def wrap(function: LeafFunction) -> FunctionLeaf:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"@leaf needs an async function (async def), got {function!r}")
        skill_set: frozenset[str] = (
            frozenset((skills,)) if isinstance(skills, str) else frozenset(skills)
        )
        return FunctionLeaf(
            fn=function,
            name=name or callable_name(function),
            description=first_paragraph(_doc(function)) if description is None else description,
            skills=skill_set,
            timeout=timeout,
            concurrency=concurrency,
        )

    return wrap if fn is None else wrap(fn)
