"""LLM leaves: a leaf agent that answers its task by asking a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from overstory.hierarchy._context import Context
from overstory.hierarchy._task import Task
from overstory.leaves._leaf import FunctionLeaf
from overstory.llm._ask import check_rounds, converse, encode
from overstory.llm._model import Message, Model
from overstory.llm._schema import tool_of

__all__ = ["LLMFunction", "llm_leaf", "resolve_model", "task_prompt"]

Prompt = Callable[[Task, Context], "str | Sequence[Message]"]


def resolve_model(model: Model | str) -> Model:
    """A model object; a string names a model at the endpoint configured by
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``."""
    if isinstance(model, str):
        from overstory.llm._openai import OpenAIModel  # its HTTP client loads on first use

        return OpenAIModel(model)
    if not isinstance(model, Model):
        raise TypeError(
            f"model must be a model name or an object with name, price and async "
            f"complete(request), got {model!r}"
        )
    return model


def task_prompt(task: Task, ctx: Context) -> str:
    """The default user message of an LLM leaf: the task, its input, the outputs of the
    steps it depends on, and reviewer feedback."""
    lines = [f"Task: {task.goal}"]
    if ctx.goal and ctx.goal != task.goal:
        lines.append(f"Overall goal: {ctx.goal}")
    if task.input is not None:
        lines.append(f"Input: {encode(task.input)}")
    if ctx.outputs:
        lines.append("Results of earlier steps:")
        lines.extend(f"- {name}: {encode(value)}" for name, value in ctx.outputs.items())
    if ctx.feedback:
        lines.append("Feedback on earlier attempts (address it):")
        lines.extend(f"- {note}" for note in ctx.feedback)
    return "\n".join(lines)


@attrs.frozen(kw_only=True)
class LLMFunction:
    """The async ``(task, ctx) -> output`` behind an :func:`llm_leaf`."""

    model: Model
    instructions: str
    output: type[Any] | None
    tools: tuple[Callable[..., Any], ...]
    prompt: Prompt
    repairs: int
    max_tool_rounds: int
    temperature: float | None
    max_tokens: int | None
    on_text: Callable[[str], None] | None = attrs.field(default=None, eq=False)

    async def __call__(self, task: Task, ctx: Context) -> Any:
        return await converse(
            self.model,
            self.prompt(task, ctx),
            output=self.output,
            instructions=self.instructions,
            tools=self.tools,
            ctx=ctx,
            purpose="answer",
            repairs=self.repairs,
            max_tool_rounds=self.max_tool_rounds,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            on_text=self.on_text,
        )


def llm_leaf(
    name: str,
    *,
    model: Model | str,
    description: str,
    instructions: str = "",
    output: type[Any] | None = None,
    tools: Iterable[Callable[..., Any]] = (),
    skills: Iterable[str] = (),
    prompt: Prompt | None = None,
    repairs: int = 1,
    max_tool_rounds: int = 8,
    temperature: float | None = None,
    max_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
) -> FunctionLeaf:
    """A leaf agent that answers each task by asking ``model``.

    The system message is ``instructions`` (default: the name and description); the user
    message is ``prompt(task, ctx)`` (default: the task, its input, the outputs of the
    steps it depends on and reviewer feedback). With ``output`` (an attrs class) the
    answer is JSON validated into it, repaired at most ``repairs`` times; without, the
    answer is text. ``tools`` are plain functions the model may call. Routing reads
    ``description`` and ``skills``; ``timeout`` bounds each attempt, ``concurrency`` the
    calls at once. Every model call is charged to the goal's budget.

    Raises ``TypeError`` at once for a tool that cannot be described to a model.
    """
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"llm_leaf {name!r} needs a description: routing reads it")
    check_rounds("repairs", repairs)
    check_rounds("max_tool_rounds", max_tool_rounds)
    functions = tuple(tools)
    for fn in functions:
        tool_of(fn)
    resolved = resolve_model(model)
    skill_set = frozenset((skills,)) if isinstance(skills, str) else frozenset(skills)
    return FunctionLeaf(
        fn=LLMFunction(
            model=resolved,
            instructions=instructions or f"You are {name}: {description}",
            output=output,
            tools=functions,
            prompt=prompt or task_prompt,
            repairs=repairs,
            max_tool_rounds=max_tool_rounds,
            temperature=temperature,
            max_tokens=max_tokens,
            on_text=on_text,
        ),
        name=name,
        description=description,
        skills=skill_set,
        timeout=timeout,
        concurrency=concurrency,
    )
