"""The strict converter: request bodies in, responses out.

:data:`api` takes JSON types as they are (no ``"5"`` for an int, no ``true`` for a
number); :func:`structure` turns every failure into a list of :class:`Problem`, each
naming the field.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from overstory.daemon._model_fields import FieldError, _Range, _Text
from overstory.daemon._model_responses import Problem

T = TypeVar("T")


def _strict_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_json_type(value)}")
    return value


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(f"expected an integer, got {_json_type(value)}")
    return value


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {_json_type(value)}")
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return float(value)


def _strict_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


#: Structures request bodies strictly; unstructures responses to JSON-ready values.
api = cattrs.Converter(forbid_extra_keys=True)
api.register_structure_hook(str, _strict_str)
api.register_structure_hook(int, _strict_int)
api.register_structure_hook(float, _strict_float)
api.register_structure_hook(bool, _strict_bool)


class InvalidBody(ValueError):
    """A request body that does not fit its class; ``problems`` names each field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field or 'body'}: {p.problem}" for p in problems))
        self.problems = problems


def structure(data: Any, kind: type[T]) -> T:
    """``data`` (parsed JSON) as ``kind``; raises :class:`InvalidBody` naming each problem."""
    if not isinstance(data, dict):
        raise InvalidBody(
            [Problem(field="", problem=f"expected an object, got {_json_type(data)}")]
        )
    # attrs stops at the first failing validator: run ours on every well-typed value first,
    # so that one answer names every problem.
    problems: list[Problem] = []
    for field in attrs.fields(kind):  # type: ignore[arg-type]
        check = field.validator
        value = data.get(field.name)
        fits = (isinstance(check, _Text) and isinstance(value, str)) or (
            isinstance(check, _Range)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        )
        if fits:
            try:
                check(None, field, value)
            except FieldError as exc:
                problems.append(Problem(field=exc.field, problem=exc.problem))
    try:
        result = api.structure(data, kind)
    except (ClassValidationError, FieldError) as exc:
        named = {p.field for p in problems}
        problems.extend(p for p in _problems(exc, ()) if p.field not in named)
    if problems:
        raise InvalidBody(problems)
    return result


def _problems(exc: BaseException, path: tuple[str, ...]) -> list[Problem]:
    here = ".".join(path)
    if isinstance(exc, FieldError):
        return [Problem(field=".".join((*path, exc.field)), problem=exc.problem)]
    if isinstance(exc, ForbiddenExtraKeysError):
        return [
            Problem(field=".".join((*path, key)), problem="unknown field")
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, ClassValidationError | IterableValidationError):
        found: list[Problem] = []
        for sub in exc.exceptions:
            name = _note_name(sub)
            found.extend(_problems(sub, (*path, name) if name is not None else path))
        return found
    if isinstance(exc, KeyError):
        return [Problem(field=here, problem="required field missing")]
    return [Problem(field=here, problem=str(exc) or type(exc).__name__)]


def _note_name(exc: BaseException) -> str | None:
    for note in getattr(exc, "__notes__", ()):
        name = getattr(note, "name", None)
        if name is None:
            name = getattr(note, "index", None)
        if name is not None:
            return str(name)
    return None


def unstructure(value: Any) -> Any:
    """A response object as JSON-ready values."""
    return api.unstructure(value)
