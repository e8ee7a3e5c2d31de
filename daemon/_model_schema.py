"""JSON Schema (the OpenAPI 3.1 dialect) generated from the API's attrs classes.

Made from the same classes and field metadata that validate requests, so the OpenAPI
document cannot drift from the validation.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Union

import attrs


def json_schema(kind: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.1 dialect) of ``kind``; attrs classes and enums go into
    ``components`` and are referenced."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return {}
    if kind is type(None):
        return {"type": "null"}
    if kind is str:
        return {"type": "string"}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind is float:
        return {"type": "number"}
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(arg, components) for arg in typing.get_args(kind)]}
    if origin is list:
        (item,) = typing.get_args(kind)
        return {"type": "array", "items": json_schema(item, components)}
    if origin is dict:
        return {"type": "object"}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        components.setdefault(kind.__name__, {"enum": [member.value for member in kind]})
        return {"$ref": f"#/components/schemas/{kind.__name__}"}
    if attrs.has(kind):
        if kind.__name__ not in components:
            components[kind.__name__] = {}  # a placeholder breaks reference cycles
            components[kind.__name__] = _object_schema(kind, components)
        return {"$ref": f"#/components/schemas/{kind.__name__}"}
    raise TypeError(f"no JSON Schema for {kind!r}")


def _object_schema(kind: type, components: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(kind)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(kind):
        schema = dict(json_schema(hints[field.name], components))
        constraints = field.metadata.get("schema", {})
        if constraints:
            nullable = "anyOf" in schema
            target = next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)
            target.update(constraints)
            if nullable:
                schema = {"anyOf": schema["anyOf"]}
        if "doc" in field.metadata:
            schema["description"] = field.metadata["doc"]
        if field.default is not attrs.NOTHING and not isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            schema["default"] = _default(field.default)
        properties[field.name] = schema
        if field.default is attrs.NOTHING:
            required.append(field.name)
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if kind.__doc__:
        result["description"] = kind.__doc__.strip().split("\n\n")[0]
    return result


def _default(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value
