"""What the HTTP API reads and writes: attrs classes, one strict converter, their schemas.

Request bodies are structured with :data:`api` (a cattrs converter that takes JSON types
as they are: no ``"5"`` for an int, no ``true`` for a number) and validated by the
classes' own validators; :func:`structure` turns every failure into a list of
:class:`Problem`, each naming the field. The OpenAPI document's schemas are generated
from the same classes (:func:`json_schema`), so the document cannot drift from the
validation.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from typing import Any, TypeVar, Union

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

__all__ = [
    "AttemptView",
    "EditReview",
    "ErrorBody",
    "EventPage",
    "EventView",
    "GoalDetail",
    "GoalPage",
    "GoalStatus",
    "GoalSummary",
    "HealthView",
    "InvalidBody",
    "NodeView",
    "Problem",
    "RejectReview",
    "ReviewList",
    "ReviewStatus",
    "ReviewView",
    "StepDone",
    "SubmitGoal",
    "TraceView",
    "TreeView",
    "api",
    "json_schema",
    "structure",
]

T = TypeVar("T")

MAX_GOAL_LENGTH = 65_536
MAX_KEY_LENGTH = 200
MAX_PRIORITY = 1000
MAX_TIMEOUT = 30 * 86_400.0
MAX_REASON_LENGTH = 65_536


class GoalStatus(enum.Enum):
    """Where a goal is. All but queued and running are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    BUDGET_EXHAUSTED = "budget_exhausted"

    @property
    def final(self) -> bool:
        return self not in (GoalStatus.QUEUED, GoalStatus.RUNNING)


class ReviewStatus(enum.Enum):
    """A review is pending until decided; ``void`` when its goal ended first."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"
    VOID = "void"


# -- fields that validate and describe themselves -------------------------------------


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


# -- requests ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SubmitGoal:
    """A goal to run."""

    goal: str = text(max_length=MAX_GOAL_LENGTH, description="What to do, in plain language.")
    input: Any = attrs.field(
        default=None, metadata=doc("Any JSON value, handed to the tree as the goal's input.")
    )
    timeout: float | None = number(
        default=None,
        minimum=0,
        maximum=MAX_TIMEOUT,
        exclusive_minimum=True,
        description="Seconds from the goal's first start until it is cancelled as timed_out.",
    )
    priority: int = number(
        default=0,
        minimum=-MAX_PRIORITY,
        maximum=MAX_PRIORITY,
        description="Queued goals start highest priority first, then oldest first.",
    )
    idempotency_key: str | None = text(
        default=None,
        max_length=MAX_KEY_LENGTH,
        description="Submitting the same key again returns the first goal instead of a new one.",
    )


@attrs.frozen(kw_only=True)
class RejectReview:
    """Send the output back: the step runs again and its agent sees ``reason``."""

    reason: str = text(
        max_length=MAX_REASON_LENGTH, description="Feedback for the agent (ctx.feedback)."
    )


@attrs.frozen(kw_only=True)
class EditReview:
    """Hand on ``output`` instead of what the agent produced."""

    output: Any = attrs.field(metadata=doc("The replacement output (any JSON value)."))


# -- responses -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Problem:
    """One thing wrong with a request: the field (dotted path, ``""`` for the whole body)."""

    field: str
    problem: str


@attrs.frozen(kw_only=True)
class ErrorBody:
    """Every 4xx and 5xx answer: a stable code, a sentence, and the fields at fault."""

    error: str
    message: str
    problems: list[Problem] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class HealthView:
    status: str


@attrs.frozen(kw_only=True)
class GoalSummary:
    """A goal as lists show it."""

    id: str
    goal: str
    status: GoalStatus
    priority: int
    timeout: float | None
    idempotency_key: str | None
    submitted_by: str
    created_at: float = attrs.field(metadata=doc("Unix time the goal was accepted (committed)."))
    started_at: float | None = attrs.field(metadata=doc("Unix time it first started running."))
    finished_at: float | None
    error: str | None = attrs.field(
        metadata=doc("The last failure, 'Type: message', for failed goals.")
    )


@attrs.frozen(kw_only=True)
class StepDone:
    """A completed step whose output is checkpointed (it will not run again)."""

    key: str
    at: float
    output: Any


@attrs.frozen(kw_only=True)
class AttemptView:
    """An agent attempt running right now."""

    path: str
    step: str | None
    attempt: int
    since: float


@attrs.frozen(kw_only=True)
class GoalDetail(GoalSummary):
    """A goal with its input, the steps done so far, what runs now, and its outcome."""

    input: Any
    steps: list[StepDone]
    running: list[AttemptView]
    pending_reviews: list[int]
    outcome: dict[str, Any] | None = attrs.field(
        metadata=doc("The core's Outcome as JSON, once the goal ended.")
    )


@attrs.frozen(kw_only=True)
class GoalPage:
    goals: list[GoalSummary]
    next_cursor: str | None = attrs.field(
        metadata=doc("Pass as ?cursor= for the next page; null on the last.")
    )


@attrs.frozen(kw_only=True)
class ReviewView:
    """A step's output held for a human decision."""

    id: int
    goal_id: str
    key: str
    round: int
    path: str
    step: str
    agent: str
    output: Any
    status: ReviewStatus
    reason: str | None
    edited_output: Any
    decided_by: str | None
    created_at: float
    decided_at: float | None


@attrs.frozen(kw_only=True)
class ReviewList:
    reviews: list[ReviewView]


@attrs.frozen(kw_only=True)
class EventView:
    """One entry of the append-only audit log."""

    seq: int
    at: float
    goal_id: str | None
    kind: str
    actor: str = attrs.field(metadata=doc("'daemon', 'tree', or the role of the token that asked."))
    data: dict[str, Any]


@attrs.frozen(kw_only=True)
class EventPage:
    events: list[EventView]
    next_after: int | None = attrs.field(
        metadata=doc("Pass as ?after= for the next page; null on the last.")
    )


@attrs.frozen(kw_only=True)
class TraceView:
    """A goal's recorded spans (one trace per run), as ``overstory trace`` reads them."""

    goal_id: str
    spans: list[dict[str, Any]]


@attrs.frozen(kw_only=True)
class NodeView:
    """One node of the live tree (see overstory.NodeHealth)."""

    path: str
    layer: str
    in_flight: int
    succeeded: int
    failed: int
    breaker: str | None
    tripped: bool | None
    recent_failures: int | None
    live: int | None
    restarts: int | None


@attrs.frozen(kw_only=True)
class TreeView:
    tree: str
    accepting: bool
    goals_running: int
    goals_queued: int
    reviews_pending: int
    nodes: list[NodeView]


# -- the strict converter -------------------------------------------------------------


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


# -- JSON Schema ---------------------------------------------------------------------


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


def unstructure(value: Any) -> Any:
    """A response object as JSON-ready values."""
    return api.unstructure(value)
