"""JSON schemas for structured answers and tool parameters, derived from Python types.

Supported: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``, lists, tuples,
sets and sequences, ``dict[str, T]``, unions and ``Optional``, ``Literal``, enums, and
attrs classes (fields with defaults are optional). ``Annotated[T, "text"]`` adds a
description; so does ``metadata={"description": ...}`` on an attrs field.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["Tool", "schema_of", "tool_of"]


def schema_of(kind: Any) -> dict[str, Any]:
    """The JSON schema of values of type ``kind``; ``TypeError`` for types it cannot
    describe."""
    return _schema(kind, {})


def _schema(kind: Any, seen: dict[type, int]) -> dict[str, Any]:
    if kind is Any or kind is object:
        return {}
    if kind is None or kind is type(None):
        return {"type": "null"}
    if kind is str:
        return {"type": "string"}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind is float:
        return {"type": "number"}
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Annotated:
        schema = _schema(args[0], seen)
        notes = [a for a in args[1:] if isinstance(a, str)]
        if notes:
            schema = {**schema, "description": " ".join(notes)}
        return schema
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is typing.Union or origin is types.UnionType:
        options = [_schema(a, seen) for a in args]
        return {"anyOf": options}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return {"enum": [member.value for member in kind]}
    if isinstance(kind, type) and attrs.has(kind):
        return _attrs_schema(kind, seen)
    if origin in (list, set, frozenset, collections.abc.Sequence, collections.abc.Set) or (
        kind in (list, set, frozenset)
    ):
        item = _schema(args[0], seen) if args else {}
        return {"type": "array", "items": item}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema(args[0], seen)}
        return {
            "type": "array",
            "prefixItems": [_schema(a, seen) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin in (dict, collections.abc.Mapping) or kind is dict:
        if args and args[0] is not str:
            raise TypeError(f"JSON objects need string keys, got {kind!r}")
        return {"type": "object", "additionalProperties": _schema(args[1], seen) if args else {}}
    raise TypeError(f"cannot describe {kind!r} as a JSON schema")


def _attrs_schema(kind: type, seen: dict[type, int]) -> dict[str, Any]:
    if seen.get(kind, 0) > 0:
        raise TypeError(f"recursive attrs class {kind.__name__} cannot be described")
    seen[kind] = 1
    try:
        hints = typing.get_type_hints(kind, include_extras=True)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(kind):
            if not field.init:
                continue
            name = field.alias or field.name
            schema = _schema(hints.get(field.name, Any), seen)
            description = field.metadata.get("description")
            if description:
                schema = {**schema, "description": description}
            properties[name] = schema
            if field.default is attrs.NOTHING:
                required.append(name)
        schema = {"type": "object", "properties": properties, "required": required}
        doc = _first_paragraph(kind.__doc__)
        if doc and not _is_generated_doc(kind, doc):
            schema["description"] = doc
        return schema
    finally:
        seen[kind] = 0


def _is_generated_doc(kind: type, doc: str) -> bool:
    # attrs classes without a docstring get the generated ``Name(field, ...)`` signature.
    return doc.startswith(f"{kind.__name__}(")


def _first_paragraph(doc: str | None) -> str:
    return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ") if doc else ""


@attrs.frozen(kw_only=True)
class Tool:
    """A plain Python function offered to a model as a tool.

    ``parameters`` are the function's parameters with their annotations (the JSON schema
    the model sees is derived from them); a parameter named ``ctx`` receives the calling
    agent's :class:`~overstory.Context` and is not shown to the model.
    """

    name: str
    description: str
    fn: Callable[..., Any]
    parameters: Mapping[str, Any]
    takes_context: bool
    schema: Mapping[str, Any]
    is_async: bool


def tool_of(fn: object) -> Tool:
    """Describe ``fn`` as a tool: its name, its docstring's first paragraph, and a schema of
    its parameters. Raises ``TypeError`` for ``*args``/``**kwargs``, a missing annotation,
    or a type that cannot be described."""
    if isinstance(fn, Tool):
        return fn
    if not callable(fn):
        raise TypeError(f"a tool must be a function, got {fn!r}")
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"a tool needs a __name__, got {fn!r}")
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    takes_context = False
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args and **kwargs cannot be described to a model")
        if parameter.name == "ctx":
            takes_context = True
            continue
        if parameter.name not in hints:
            raise TypeError(f"tool {name}: parameter {parameter.name!r} needs a type annotation")
        kind = hints[parameter.name]
        try:
            properties[parameter.name] = schema_of(kind)
        except TypeError as exc:
            raise TypeError(f"tool {name}: parameter {parameter.name!r}: {exc}") from None
        parameters[parameter.name] = kind
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    unwrapped = inspect.unwrap(fn)
    return Tool(
        name=name,
        description=_first_paragraph(fn.__doc__),
        fn=fn,
        parameters=parameters,
        takes_context=takes_context,
        schema={"type": "object", "properties": properties, "required": required},
        is_async=inspect.iscoroutinefunction(unwrapped)
        or inspect.iscoroutinefunction(type(fn).__call__),
    )
