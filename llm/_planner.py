"""Planning with a model: a goal in, a validated DAG of steps over the team out."""

from __future__ import annotations

from typing import Any

import attrs

from overstory._checks import at_least
from overstory._errors import PlanError
from overstory.hierarchy._context import Context
from overstory.hierarchy._plan import NAME_PATTERN, Step, validate_plan
from overstory.hierarchy._task import Task
from overstory.llm._ask import check_rounds, converse, encode
from overstory.llm._errors import InvalidOutput
from overstory.llm._model import Model

__all__ = ["LLMPlanner"]

_SYSTEM = (
    "You plan work for a team. Break the goal into steps, each a plain-language "
    "instruction for one of the teams below. A step runs after the steps named in its "
    "'after' list and sees their results; steps without dependencies between them run in "
    "parallel. Use as few steps as the goal needs. Step names are short identifiers "
    "(letters, digits, '_', '-'). 'team' is the name of the team to do the step, or null "
    "to let routing choose."
)


@attrs.frozen
class _PlannedStep:
    name: str
    goal: str
    team: str | None = None
    after: list[str] = attrs.Factory(list)


@attrs.frozen
class _Plan:
    steps: list[_PlannedStep]


def _steps(plan: _Plan) -> list[Step]:
    return [Step(s.name, s.goal, to=s.team or None, after=tuple(s.after)) for s in plan.steps]


@attrs.frozen
class LLMPlanner:
    """A plan function (``plan=`` of a supervisor) that asks ``model`` to break each goal
    into at most ``max_steps`` steps over the supervisor's children, with dependencies.

    The answer is checked as the supervisor would check it (unknown teams or
    dependencies, duplicate names, cycles) and sent back with the problem up to
    ``repairs`` times; then :class:`~overstory.PlanError` fails the goal. When the
    supervisor re-plans after an escalation (``Strategic(replans=...)``), the failures
    arrive in ``ctx.feedback`` and the model is told to avoid them.
    """

    model: Model
    max_steps: int = attrs.field(default=8, kw_only=True, validator=at_least(1, whole=True))
    repairs: int = attrs.field(default=2, kw_only=True)
    instructions: str = attrs.field(default="", kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_rounds("LLMPlanner.repairs", self.repairs)

    async def __call__(self, task: Task, ctx: Context) -> tuple[Step, ...]:
        if not ctx.children:
            raise PlanError(ctx.path, "LLMPlanner needs the supervisor's children: use it as plan=")
        names = [c.name for c in ctx.children]

        def check(plan: Any) -> str | None:
            if len(plan.steps) > self.max_steps:
                return f"the plan has {len(plan.steps)} steps; at most {self.max_steps} allowed"
            try:
                validate_plan(_steps(plan), names)
            except ValueError as exc:
                return str(exc)
            return None

        step_schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": NAME_PATTERN.pattern},
                "goal": {"type": "string"},
                "team": {"anyOf": [{"type": "string", "enum": names}, {"type": "null"}]},
                "after": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "goal", "team", "after"],
            "additionalProperties": False,
        }
        schema = {
            "type": "object",
            "properties": {
                "steps": {
                    "type": "array",
                    "items": step_schema,
                    "minItems": 1,
                    "maxItems": self.max_steps,
                }
            },
            "required": ["steps"],
            "additionalProperties": False,
        }
        lines = [f"Goal: {task.goal}"]
        if task.input is not None:
            lines.append(f"Input: {encode(task.input)}")
        if ctx.outputs:
            lines.append("Results already available:")
            lines.extend(f"- {name}: {encode(value)}" for name, value in ctx.outputs.items())
        lines.append(f"Teams (at most {self.max_steps} steps):")
        for child in ctx.children:
            line = f"- {child.name}: {child.description or '(no description)'}"
            if child.skills:
                line += f" (skills: {', '.join(sorted(child.skills))})"
            lines.append(line)
        if ctx.feedback:
            lines.append("Earlier attempts failed; make a plan that avoids these failures:")
            lines.extend(f"- {note}" for note in ctx.feedback)
        try:
            plan = await converse(
                self.model,
                "\n".join(lines),
                output=_Plan,
                instructions="\n\n".join(p for p in (_SYSTEM, self.instructions) if p),
                ctx=ctx,
                purpose="plan",
                repairs=self.repairs,
                schema=schema,
                schema_name="plan",
                check=check,
            )
        except InvalidOutput as exc:
            raise PlanError(ctx.path, f"the model gave no valid plan: {exc.message}") from exc
        return validate_plan(_steps(plan), names)
