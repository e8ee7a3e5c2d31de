"""Test helpers shared by the core tests: a call recorder and scripted leaves."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import attrs

import overstory as ov


@attrs.define
class Calls:
    """Records which leaf ran, with which attempt, in order."""

    log: list[tuple[str, int]] = attrs.field(factory=list)

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.log if n == name)


def failing_leaf(
    name: str,
    calls: Calls,
    *,
    fail: int | None = None,
    error: Callable[[], Exception] = lambda: RuntimeError("boom"),
    result: Any = None,
    description: str = "",
    skills: tuple[str, ...] = (),
    timeout: float | None = None,
) -> ov.FunctionLeaf:
    """A leaf that fails its first ``fail`` calls (all when ``None``), then returns ``result``."""

    async def body(task: ov.Task, ctx: ov.Context) -> Any:
        calls.log.append((name, ctx.attempt))
        if fail is None or calls.count(name) <= fail:
            raise error()
        return result if result is not None else f"{name}:{task.step}"

    return ov.FunctionLeaf(
        fn=body, name=name, description=description, skills=frozenset(skills), timeout=timeout
    )


def events_of(events: list[ov.SupervisionEvent], kind: ov.EventKind) -> list[ov.SupervisionEvent]:
    return [e for e in events if e.kind is kind]


@contextlib.contextmanager
def collector_off() -> Iterator[list[Any]]:
    """Collect once, then keep the cyclic garbage collector off for the block; on leaving
    it, collect again and fill the list it gave with what that collection found: the
    objects that only a reference cycle kept alive after the block."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    left: list[Any] = []
    try:
        yield left
    finally:
        gc.collect()
        left += gc.garbage
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
