"""Goal budgets: tokens, cost and attempts, charged as the goal runs and enforced at once.

A budget belongs to a goal and is shared by every agent working on it. Charging past
a limit marks the goal exhausted and cancels its whole cancel scope, so nothing below
keeps spending; the outcome's status is BUDGET_EXHAUSTED.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

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

    tokens: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(at_least(0, whole=True))
    )
    cost: float | None = attrs.field(default=None, validator=attrs.validators.optional(at_least(0)))
    attempts: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(at_least(1, whole=True))
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


class _Tally:
    """A :class:`UsageLine` being added up: mutable, so a charge allocates nothing."""

    __slots__ = ("attempts", "calls", "cost", "input_tokens", "output_tokens")

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self.attempts = 0
        self.calls = 0

    def line(self) -> UsageLine:
        return UsageLine(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=self.cost,
            attempts=self.attempts,
            calls=self.calls,
        )


class Usage:
    """A goal's running account, rolled up per agent path, per layer and in total.

    ``total``, ``by_agent`` and ``by_layer`` are snapshots taken when read.
    """

    __slots__ = (
        "_agents",
        "_attempt_limit",
        "_layers",
        "_leaf",
        "_limited",
        "_total",
        "budget",
        "exhausted",
        "on_exhausted",
    )

    def __init__(
        self, *, budget: Budget | None = None, on_exhausted: Callable[[], None] | None = None
    ) -> None:
        self.budget = budget or Budget()
        self.on_exhausted = on_exhausted
        self.exhausted: str | None = None
        self._total = _Tally()
        self._agents: dict[str, _Tally] = {}
        self._layers: dict[str, _Tally] = {}
        self._leaf: _Tally | None = None  # self._layers["leaf"], once it exists
        self._attempt_limit = self.budget.attempts
        self._limited = (
            self.budget.tokens is not None
            or self.budget.cost is not None
            or self.budget.attempts is not None
        )

    @property
    def total(self) -> UsageLine:
        return self._total.line()

    @property
    def by_agent(self) -> dict[str, UsageLine]:
        return {path: tally.line() for path, tally in self._agents.items()}

    @property
    def by_layer(self) -> dict[str, UsageLine]:
        return {layer: tally.line() for layer, tally in self._layers.items()}

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
        agent, by_layer = self._tally(self._agents, path), self._tally(self._layers, layer)
        for tally in (self._total, agent, by_layer):
            tally.input_tokens += input_tokens
            tally.output_tokens += output_tokens
            tally.cost += cost
            tally.attempts += attempts
            tally.calls += calls
        self._check(path)

    def charge_attempt(self, path: str) -> None:
        """Charge one attempt on the leaf at ``path`` (the runtime's own charge); raises
        like :meth:`charge`."""
        if self.exhausted is not None:
            raise BudgetExhausted(path, self.exhausted)
        limit = self._attempt_limit
        if limit is not None and self._total.attempts >= limit:
            # Refused before it runs, so not counted: usage says what the goal did.
            self._exhaust(path, f"attempt budget exhausted: {self._total.attempts + 1} > {limit}")
        self._total.attempts += 1
        agent = self._agents.get(path)  # what _tally does, minus a call per attempt
        if agent is None:
            agent = self._agents[path] = _Tally()
        agent.attempts += 1
        leaf = self._leaf
        if leaf is None:
            leaf = self._leaf = self._tally(self._layers, "leaf")
        leaf.attempts += 1
        if self._limited:
            self._check(path)

    @staticmethod
    def _tally(tallies: dict[str, _Tally], key: str) -> _Tally:
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _Tally()
        return tally

    def _check(self, path: str) -> None:
        if not self._limited:
            return
        reason = self._over()
        if reason is not None:
            self._exhaust(path, reason)

    def _exhaust(self, path: str, reason: str) -> NoReturn:
        self.exhausted = reason
        if self.on_exhausted is not None:
            self.on_exhausted()
        raise BudgetExhausted(path, reason)

    def _over(self) -> str | None:
        budget, total = self.budget, self._total
        tokens = total.input_tokens + total.output_tokens
        if budget.tokens is not None and tokens > budget.tokens:
            return f"token budget exhausted: {tokens} > {budget.tokens}"
        if budget.cost is not None and total.cost > budget.cost:
            return f"cost budget exhausted: {total.cost:g} > {budget.cost:g}"
        if budget.attempts is not None and total.attempts > budget.attempts:
            return f"attempt budget exhausted: {total.attempts} > {budget.attempts}"
        return None

    def summary(self) -> UsageSummary:
        return UsageSummary(total=self.total, by_agent=self.by_agent, by_layer=self.by_layer)
