"""Goal budgets: tokens, cost and attempts, charged as the goal runs and enforced at once.

A budget belongs to a goal and is shared by every agent working on it. Charging past
a limit marks the goal exhausted and cancels its whole cancel scope, so nothing below
keeps spending; the outcome's status is BUDGET_EXHAUSTED.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from overstory._checks import at_least, optional_positive
from overstory._errors import BudgetExhausted

__all__ = ["Budget", "Usage", "UsageLine", "UsageSummary"]


@attrs.frozen(kw_only=True)
class Budget:
    """Limits for one goal; ``None`` means no limit.

    ``tokens`` counts input plus output tokens, ``cost`` is in whatever unit the agents
    charge (dollars, usually), ``attempts`` counts attempts on leaf agents, and ``time``
    is seconds (it becomes the goal's deadline, so running out of time is TIMED_OUT).
    """

    tokens: int | None = attrs.field(default=None, validator=attrs.validators.optional(at_least(0)))
    cost: float | None = attrs.field(default=None, validator=attrs.validators.optional(at_least(0)))
    attempts: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(at_least(1))
    )
    time: float | None = attrs.field(default=None, validator=optional_positive())


@attrs.frozen(kw_only=True)
class UsageLine:
    """What one agent (or one layer, or the goal) used."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    attempts: int = 0
    calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: UsageLine) -> UsageLine:
        return UsageLine(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost=self.cost + other.cost,
            attempts=self.attempts + other.attempts,
            calls=self.calls + other.calls,
        )


@attrs.frozen(kw_only=True)
class UsageSummary:
    """A goal's usage when it ended, in total, per agent path and per layer."""

    total: UsageLine = attrs.field(factory=UsageLine)
    by_agent: dict[str, UsageLine] = attrs.field(factory=dict)
    by_layer: dict[str, UsageLine] = attrs.field(factory=dict)


@attrs.define(kw_only=True, eq=False)
class Usage:
    """A goal's running account, rolled up per agent path, per layer and in total."""

    budget: Budget = attrs.field(factory=Budget)
    total: UsageLine = attrs.field(factory=UsageLine)
    by_agent: dict[str, UsageLine] = attrs.field(factory=dict)
    by_layer: dict[str, UsageLine] = attrs.field(factory=dict)
    exhausted: str | None = None
    on_exhausted: Callable[[], None] | None = None

    def charge(
        self,
        *,
        path: str,
        layer: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
        attempts: int = 0,
        calls: int = 0,
    ) -> None:
        """Add usage at ``path``. Raises :class:`BudgetExhausted` (and cancels the goal)
        when this charge takes the goal past a limit, or when it is already exhausted."""
        if self.exhausted is not None:
            raise BudgetExhausted(path, self.exhausted)
        line = UsageLine(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            attempts=attempts,
            calls=calls,
        )
        self.total = self.total.add(line)
        self.by_agent[path] = self.by_agent.get(path, UsageLine()).add(line)
        self.by_layer[layer] = self.by_layer.get(layer, UsageLine()).add(line)
        reason = self._over()
        if reason is not None:
            self.exhausted = reason
            if self.on_exhausted is not None:
                self.on_exhausted()
            raise BudgetExhausted(path, reason)

    def _over(self) -> str | None:
        budget, total = self.budget, self.total
        if budget.tokens is not None and total.tokens > budget.tokens:
            return f"token budget exhausted: {total.tokens} > {budget.tokens}"
        if budget.cost is not None and total.cost > budget.cost:
            return f"cost budget exhausted: {total.cost:g} > {budget.cost:g}"
        if budget.attempts is not None and total.attempts > budget.attempts:
            return f"attempt budget exhausted: {total.attempts} > {budget.attempts}"
        return None

    def summary(self) -> UsageSummary:
        return UsageSummary(
            total=self.total, by_agent=dict(self.by_agent), by_layer=dict(self.by_layer)
        )
