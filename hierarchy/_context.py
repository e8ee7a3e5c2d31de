"""What an agent sees besides its task: dependencies' outputs, shared memory, where it is."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import attrs
import trio

from overstory.hierarchy._budget import Usage
from overstory.hierarchy._routing import Candidate
from overstory.hierarchy._task import Task

__all__ = ["CONTEXTS", "Context", "Memory", "current_context", "restore_context", "using_context"]


class Memory(MutableMapping[str, Any]):
    """A goal's shared blackboard: every agent working on the goal reads and writes it.

    Keys are strings and values must be JSON-serialisable (the daemon stores them), so
    a bad value is refused with ``TypeError`` when it is written, not when it is saved.
    Values are copied on the way in, so later mutation of the caller's object is not seen.
    Trio runs one task at a time, so writes between two awaits are atomic.
    """

    __slots__ = ("_data",)

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = {}
        for key, value in (initial or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"memory keys must be strings, got {key!r}")
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"memory[{key!r}] must be JSON-serialisable: {exc}") from None
        self._data[key] = json.loads(encoded)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Memory({self._data!r})"

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the current contents."""
        copy: dict[str, Any] = json.loads(json.dumps(self._data))
        return copy


@attrs.frozen(kw_only=True)
class Context:
    """Everything an agent may use besides its task, for one attempt.

    ``outputs`` maps the names of the step's dependencies (at every enclosing plan level)
    to their outputs; ``memory`` is the goal's shared blackboard; ``path`` is the agent's
    place in the tree; ``attempt`` counts from 1 on the current agent; ``feedback`` holds
    the reviewer's feedback when the step is re-run after a rejection (and, for a plan
    function, why the previous plan failed when it re-plans); ``usage`` is the goal's
    running account (charge it with :meth:`charge`). ``children`` is set for a
    supervisor's plan function: its children as routing sees them.
    """

    task: Task
    goal: str
    goal_id: str
    path: str
    attempt: int
    outputs: Mapping[str, Any]
    memory: Memory
    feedback: tuple[str, ...] = ()
    layer: str = "leaf"
    usage: Usage = attrs.field(factory=Usage)
    children: tuple[Candidate, ...] = ()

    def charge(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
        calls: int = 1,
    ) -> None:
        """Charge model usage to this agent and the goal's budget.

        Raises :class:`BudgetExhausted` when the charge takes the goal past its budget;
        the goal is then cancelled, so nothing below keeps spending.
        """
        self.usage.charge(
            path=self.path,
            layer=self.layer,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            calls=calls,
        )

    @property
    def name(self) -> str:
        """The last segment of ``path``: the agent's own name."""
        return self.path.rsplit("/", 1)[-1]


#: The context of each trio task that runs an agent's work, set around each attempt.
#: Not a ContextVar: setting one builds a new mapping and a token, three objects each
#: time, twice per attempt; a dict store and a delete build nothing.
CONTEXTS: dict[trio.lowlevel.Task, Context] = {}


def current_context() -> Context | None:
    """The context of the agent whose work is running in this task, or ``None`` outside
    a tree. A supervisor's routing, planning and aggregation see the supervisor's own.

    A task that an agent's work starts (in a nursery of its own) sees that agent's
    context, as its nearest ancestor task's; code in a worker thread sees ``None``.
    """
    try:
        task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
    except RuntimeError:
        return None  # not in a trio task: a worker thread, or no run at all
    while task is not None:
        ctx = CONTEXTS.get(task)
        if ctx is not None:
            return ctx
        nursery = task.parent_nursery
        task = None if nursery is None else nursery.parent_task
    return None


def restore_context(task: trio.lowlevel.Task, outer: Context | None) -> None:
    """Give ``task`` back the context it had before one was set (``outer``, or none)."""
    if outer is None:
        del CONTEXTS[task]
    else:
        CONTEXTS[task] = outer


class using_context:
    """Make ``ctx`` the :func:`current_context` of this task for the block (the runtime
    does this around every agent invocation)."""

    __slots__ = ("_ctx", "_outer", "_task")

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __enter__(self) -> Context:
        self._task = task = trio.lowlevel.current_task()
        self._outer = CONTEXTS.get(task)
        CONTEXTS[task] = self._ctx
        return self._ctx

    def __exit__(self, *exc_info: object) -> None:
        restore_context(self._task, self._outer)
