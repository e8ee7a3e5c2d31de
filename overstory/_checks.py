"""Small attrs validators whose messages name the class, the field and the bad value."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = [
    "at_least",
    "finite_non_negative",
    "optional_positive",
    "positive",
    "to_names",
    "to_skills",
    "to_tuple",
]


def _where(instance: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


@attrs.frozen
class _AtLeast:
    minimum: float
    whole: bool

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        kinds = int if self.whole else int | float
        # ``not >=`` rather than ``<``: NaN compares false both ways, and a NaN limit
        # would never be reached.
        if isinstance(value, bool) or not isinstance(value, kinds) or not value >= self.minimum:
            what = "a whole number" if self.whole else "a number"
            raise ValueError(
                f"{_where(instance, attribute)} must be {what} at least {self.minimum:g}, "
                f"got {value!r}"
            )


@attrs.frozen
class _Positive:
    allow_none: bool

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and self.allow_none:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not value > 0
            or math.isnan(value)
        ):
            raise ValueError(
                f"{_where(instance, attribute)} must be a positive number of seconds"
                f"{' or None' if self.allow_none else ''}, got {value!r}"
            )


@attrs.frozen
class _FiniteNonNegative:
    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(
                f"{_where(instance, attribute)} must be a finite number >= 0, got {value!r}"
            )


def at_least(minimum: float, *, whole: bool = False) -> _AtLeast:
    """Accept numbers (not bools, not NaN) that are at least ``minimum``; with ``whole``,
    only ``int``s (a count: 2.5 instances or attempts means nothing)."""
    return _AtLeast(minimum, whole)


def positive() -> _Positive:
    """Accept numbers (not bools) greater than zero; ``inf`` is allowed (no limit)."""
    return _Positive(allow_none=False)


def optional_positive() -> _Positive:
    """Like :func:`positive`, and also accept ``None`` (meaning: not set)."""
    return _Positive(allow_none=True)


def finite_non_negative() -> _FiniteNonNegative:
    """Accept finite numbers (not bools) that are zero or more."""
    return _FiniteNonNegative()


def to_skills(value: str | Iterable[str]) -> frozenset[str]:
    """A set of skills; a bare string is one skill, not a set of characters."""
    return frozenset((value,)) if isinstance(value, str) else frozenset(value)


def to_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """A tuple of names; a bare string is one name."""
    return (value,) if isinstance(value, str) else tuple(value)


def to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """A tuple of the items of ``value``.

    A typed stand-in for ``converter=tuple``: attrs' mypy plugin takes the ``__init__``
    parameter's type from the converter, and cannot solve ``tuple``'s type variable.
    """
    return tuple(value)
