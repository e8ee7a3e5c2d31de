"""Request fields that validate and describe themselves.

A field made with :func:`text` or :func:`number` carries both its validator and the JSON
Schema constraints it enforces, so validation and the OpenAPI document share one source.
"""

from __future__ import annotations

from typing import Any

import attrs


class FieldError(ValueError):
    """A validator's complaint about one field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@attrs.frozen
class _Text:
    min_length: int
    max_length: int
    blank_ok: bool

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if len(value) < self.min_length or (not self.blank_ok and not value.strip()):
            raise FieldError(attribute.name, "must not be empty or blank")
        if len(value) > self.max_length:
            raise FieldError(
                attribute.name, f"must be at most {self.max_length} characters, got {len(value)}"
            )


@attrs.frozen
class _Range:
    minimum: float
    maximum: float
    exclusive_minimum: bool

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        low_ok = value > self.minimum if self.exclusive_minimum else value >= self.minimum
        if not low_ok or value > self.maximum:
            low = "greater than" if self.exclusive_minimum else "at least"
            raise FieldError(
                attribute.name,
                f"must be {low} {_num(self.minimum)} and at most {_num(self.maximum)}, "
                f"got {value!r}",
            )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def text(*, default: Any = attrs.NOTHING, max_length: int, description: str) -> Any:
    """A string field: not blank, at most ``max_length`` characters."""
    return attrs.field(
        default=default,
        validator=_Text(1, max_length, blank_ok=False),
        metadata={
            "schema": {"minLength": 1, "maxLength": max_length, "pattern": r"\S"},
            "doc": description,
        },
    )


def number(
    *,
    default: Any,
    minimum: float,
    maximum: float,
    exclusive_minimum: bool = False,
    description: str,
) -> Any:
    """A number field within bounds."""
    bounds: dict[str, Any] = {"maximum": maximum}
    bounds["exclusiveMinimum" if exclusive_minimum else "minimum"] = minimum
    return attrs.field(
        default=default,
        validator=_Range(minimum, maximum, exclusive_minimum),
        metadata={"schema": bounds, "doc": description},
    )


def doc(description: str) -> dict[str, str]:
    """Field metadata: a description for the schema."""
    return {"doc": description}
