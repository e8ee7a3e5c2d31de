"""Building frozen attrs records on the hot path, from values already known to be valid.

A frozen attrs class sets each field through ``object.__setattr__`` (the class forbids
plain assignment), and runs its converters even when the value is already converted.
The runtime builds a :class:`~overstory.Task`, a :class:`~overstory.Context` and an
attempt's result for every leaf attempt, and a :class:`~overstory.StepRecord` for every
unit of work, from values it produced itself, so it uses a constructor that writes the
slots directly: the same object (equal, same hash, same repr) at about half the cost.
Users keep the checked ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["trusted_constructor"]

T = TypeVar("T")


def trusted_constructor(cls: type[T]) -> Callable[..., T]:
    """A function ``make(field, ...)`` taking every field of ``cls`` positionally, in
    definition order, that builds an instance without converters, validators, defaults
    or ``__attrs_post_init__``.

    Raises :class:`TypeError` at import time for a class it cannot build faithfully:
    one that is not a slotted attrs class, or that caches its hash or has a post-init.
    """
    slots = cls.__dict__.get("__slots__")
    if not attrs.has(cls) or slots is None:
        raise TypeError(f"{cls.__qualname__} is not a slotted attrs class")
    if "_attrs_cached_hash" in slots or hasattr(cls, "__attrs_post_init__"):
        raise TypeError(f"{cls.__qualname__} does more in __init__ than set its fields")
    names = [field.name for field in attrs.fields(cls)]
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    lines = [f"def make({', '.join(names)}):", "    self = new(cls)"]
    for name in names:
        # The slot's own descriptor: writing through it is what object.__setattr__ ends
        # up doing, minus the lookup and the frozen-class check.
        namespace[f"set_{name}"] = cls.__dict__[name].__set__
        lines.append(f"    set_{name}(self, {name})")
    lines.append("    return self")
    exec("\n".join(lines), namespace)  # the names come from attrs.fields(), not input
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = f"trusted_constructor({cls.__qualname__})"
    return make
