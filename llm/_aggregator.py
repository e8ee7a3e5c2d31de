"""Synthesis: a model writes a supervisor's answer from its steps' outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from overstory.hierarchy._context import Context
from overstory.hierarchy._task import Task
from overstory.llm._ask import check_rounds, converse, encode
from overstory.llm._model import Model

__all__ = ["LLMAggregator"]

_SYSTEM = (
    "You write the final answer to a goal from the results of the steps that worked on "
    "it. Use only what the results say; say plainly what is missing."
)


@attrs.frozen
class LLMAggregator:
    """An aggregator (``aggregate=`` of a supervisor) that asks ``model`` to write the
    supervisor's output from the goal and every step's output.

    The answer is text, or an instance of ``output`` (an attrs class) validated with at
    most ``repairs`` repair rounds. ``on_text`` receives the text as it streams in (print
    the final answer while it is written).
    """

    model: Model
    instructions: str = attrs.field(default="", kw_only=True)
    output: type[Any] | None = attrs.field(default=None, kw_only=True)
    repairs: int = attrs.field(default=1, kw_only=True)
    on_text: Callable[[str], None] | None = attrs.field(default=None, kw_only=True, eq=False)

    def __attrs_post_init__(self) -> None:
        check_rounds("LLMAggregator.repairs", self.repairs)

    async def __call__(self, outputs: Mapping[str, Any], task: Task, ctx: Context) -> Any:
        lines = [f"Goal: {task.goal}"]
        if task.input is not None:
            lines.append(f"Input: {encode(task.input)}")
        lines.append("Results of the steps:")
        lines.extend(f"- {name}: {encode(value)}" for name, value in outputs.items())
        return await converse(
            self.model,
            "\n".join(lines),
            output=self.output,
            instructions="\n\n".join(p for p in (_SYSTEM, self.instructions) if p),
            ctx=ctx,
            purpose="aggregate",
            repairs=self.repairs,
            on_text=self.on_text,
        )
