"""Routing by description with a model, falling back to the lexical router."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
from opentelemetry import trace

from overstory._errors import BudgetExhausted
from overstory.hierarchy._routing import Candidate, LexicalRouter, Router, RouteRequest
from overstory.llm._ask import check_rounds, converse
from overstory.llm._model import Model

__all__ = ["LLMRouter"]

logger = logging.getLogger("overstory")

_SYSTEM = (
    "You route work inside a team. Given a step and the team's members, rank the members "
    "who could do the step, best first, judging by their descriptions and skills. Leave "
    "out members who cannot do it. Use the members' names exactly as listed."
)


@attrs.frozen
class _Ranking:
    ranking: list[str]


def _describe(candidate: Candidate) -> str:
    line = f"- {candidate.name}: {candidate.description or '(no description)'}"
    if candidate.skills:
        line += f" (skills: {', '.join(sorted(candidate.skills))})"
    return line


@attrs.frozen
class LLMRouter:
    """A router that asks ``model`` to rank a supervisor's children for a step, from their
    names, descriptions and skills.

    The answer is constrained to the children's names (a JSON schema enum) and checked:
    a ranking that names anything else, names nobody, or a model call that fails makes
    the router answer with ``fallback`` (the lexical router by default) instead, after
    ``repairs`` repair rounds (none by default). The ranking feeds reassignment: the
    supervisor tries the children in this order. With one candidate the model is not
    asked. Budget exhaustion and cancellation are not fallen back from.
    """

    model: Model
    fallback: Router = attrs.field(factory=LexicalRouter, kw_only=True)
    instructions: str = attrs.field(default="", kw_only=True)
    repairs: int = attrs.field(default=0, kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_rounds("LLMRouter.repairs", self.repairs)

    async def __call__(
        self, request: RouteRequest, candidates: Sequence[Candidate]
    ) -> Sequence[str]:
        names = [c.name for c in candidates]
        if len(names) <= 1:
            return names
        allowed = set(names)

        def check(answer: Any) -> str | None:
            unknown = [n for n in answer.ranking if n not in allowed]
            if unknown:
                return (
                    f"{', '.join(repr(n) for n in unknown)} not among the members "
                    f"({', '.join(names)})"
                )
            if not answer.ranking:
                return "the ranking names no member"
            return None

        schema = {
            "type": "object",
            "properties": {
                "ranking": {
                    "type": "array",
                    "items": {"type": "string", "enum": names},
                    "minItems": 1,
                }
            },
            "required": ["ranking"],
            "additionalProperties": False,
        }
        lines = [f"Step: {request.goal}"]
        if request.skills:
            lines.append(f"Skills asked for: {', '.join(sorted(request.skills))}")
        if request.to:
            lines.append(f"Requested member (ranked first regardless): {request.to}")
        lines.append("Members:")
        lines.extend(_describe(c) for c in candidates)
        try:
            answer = await converse(
                self.model,
                "\n".join(lines),
                output=_Ranking,
                instructions="\n\n".join(p for p in (_SYSTEM, self.instructions) if p),
                agent=request.path,
                purpose="route",
                repairs=self.repairs,
                schema=schema,
                schema_name="ranking",
                check=check,
            )
        except BudgetExhausted:
            raise
        except Exception as exc:
            logger.warning(
                "%s: LLM routing of step %r failed, using the fallback router: %s",
                request.path,
                request.step,
                exc,
            )
            trace.get_current_span().add_event(
                "overstory.router_fallback",
                {
                    "overstory.path": request.path,
                    "overstory.step": request.step or "",
                    "error.type": type(exc).__name__,
                    "overstory.message": str(exc),
                },
            )
            return await self.fallback(request, candidates)
        return list(dict.fromkeys(answer.ranking))
