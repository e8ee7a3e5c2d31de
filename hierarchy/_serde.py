"""JSON round trips of tasks, steps and outcomes with cattrs (the daemon stores them)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.preconf.json import make_converter

from overstory.hierarchy._task import SAME_INPUT, Handoff

__all__ = ["converter", "from_json", "to_json"]

T = TypeVar("T")

#: The converter used for every overstory record; extend it for your own types.
converter: cattrs.Converter = make_converter(omit_if_default=False, forbid_extra_keys=True)
converter.register_unstructure_hook(frozenset, lambda value: sorted(value))


def _unstructure_handoff(handoff: Handoff) -> dict[str, Any]:
    data = {
        field.name: converter.unstructure(getattr(handoff, field.name))
        for field in attrs.fields(Handoff)
        if field.name != "input"
    }
    if handoff.input is not SAME_INPUT:
        data["input"] = handoff.input
    return data


converter.register_unstructure_hook(Handoff, _unstructure_handoff)


def to_json(value: Any, *, indent: int | None = None) -> str:
    """Encode an overstory record (or any value cattrs understands) as JSON text."""
    return json.dumps(converter.unstructure(value), indent=indent, ensure_ascii=False)


def from_json(kind: type[T], text: str | bytes) -> T:
    """Decode JSON text into ``kind``.

    Raises ``cattrs.ClassValidationError`` (a ``ValueError`` group) naming each bad field,
    or ``json.JSONDecodeError`` for text that is not JSON.
    """
    return converter.structure(json.loads(text), kind)
