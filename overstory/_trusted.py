"""Building frozen attrs records on the hot path, from values already known to be valid.

A frozen attrs class forbids assignment with a ``__setattr__`` of its own, so its
``__init__`` sets each field through ``object.__setattr__``: a call through a slot
wrapper, which packs its arguments into a tuple, per field. It also runs converters
even when the value is already converted. The runtime builds a
:class:`~overstory.Task`, a :class:`~overstory.Context` and an attempt's result for
every leaf attempt, and a :class:`~overstory.StepRecord` for every unit of work, from
values it produced itself, so it uses a constructor that skips both: it fills the
instance as a private subclass that allows assignment and adds no slots, then assigns
the instance's ``__class__`` to the record class (which Python allows between two
classes of the same layout). The result is the same object (type, equality, hash,
repr, still frozen) at about a third of the cost. Users keep the checked ``__init__``.
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
    # Both halves of the attribute-setting slot are object's own, so Python sets a field
    # with a plain slot store; with either one inherited from the frozen class, every
    # store would go through it.
    builder = type(
        f"_Building{cls.__name__}",
        (cls,),
        {"__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__},
    )
    namespace: dict[str, Any] = {"new": object.__new__, "builder": builder, "cls": cls}
    lines = [f"def make({', '.join(names)}):", "    self = new(builder)"]
    lines += [f"    self.{name} = {name}" for name in names]
    lines += ["    self.__class__ = cls", "    return self"]
    exec("\n".join(lines), namespace)  # the names come from attrs.fields(), not input
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = f"trusted_constructor({cls.__qualname__})"
    return make
