"""What every endpoint shares: the endpoint and parameter types, one call, error answers.

An :class:`Endpoint` row (in :data:`overstory.daemon._api.ENDPOINTS`) names its handler;
the handler gets a :class:`Call` and answers with :func:`_json`, or raises
:class:`HttpError`, which becomes an :class:`ErrorBody`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import trio
from starlette.requests import Request
from starlette.responses import Response

from overstory._text import is_text, utf8
from overstory.daemon._auth import Identity, Role, Tokens
from overstory.daemon._models import ErrorBody, InvalidBody, Problem, structure, unstructure
from overstory.daemon._service import Daemon

MAX_DEPTH = 64
MAX_ID = 2**63 - 1

Handler = Callable[["Call"], Awaitable[Response]]


class HttpError(Exception):
    """Answer ``status`` with an :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        problems: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(error=error, message=message, problems=problems or [])
        self.headers = headers or {}


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        utf8(_ENCODER.encode(unstructure(value))),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _error(exc: HttpError) -> Response:
    return _json(exc.body, exc.status, exc.headers)


# -- query parameters -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Param:
    """A query parameter: parsed, bounded, and documented from one definition."""

    name: str
    kind: str  # "int", "str", "bool", or "enum"
    description: str
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()

    def parse(self, request: Request) -> Any:
        raw = request.query_params.get(self.name)
        if raw is None or raw == "":
            return self.default
        if self.kind == "str":
            if len(raw) > 200:
                raise self._bad("must be at most 200 characters")
            return raw
        if self.kind == "bool":
            if raw not in ("true", "false"):
                raise self._bad(f"must be true or false, got {raw!r}")
            return raw == "true"
        if self.kind == "enum":
            if raw not in self.choices:
                raise self._bad(f"must be one of {', '.join(self.choices)}; got {raw!r}")
            return raw
        try:
            value = int(raw)
        except ValueError:
            raise self._bad(f"must be an integer, got {raw[:40]!r}") from None
        low = self.minimum if self.minimum is not None else -math.inf
        high = self.maximum if self.maximum is not None else math.inf
        if not low <= value <= high:
            raise self._bad(f"must be from {self.minimum} to {self.maximum}, got {value}")
        return value

    def _bad(self, problem: str) -> HttpError:
        return HttpError(
            422,
            "invalid_query",
            f"query parameter {self.name} {problem}",
            [Problem(field=self.name, problem=problem)],
        )

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any]
        if self.kind == "int":
            schema = {"type": "integer"}
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        elif self.kind == "bool":
            schema = {"type": "boolean"}
        elif self.kind == "enum":
            schema = {"type": "string", "enum": list(self.choices)}
        else:
            schema = {"type": "string", "maxLength": 200}
        if self.default is not None:
            schema["default"] = self.default
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": schema,
        }


LIMIT = Param(
    name="limit", kind="int", default=50, minimum=1, maximum=500, description="Page size."
)


# -- endpoints and calls ----------------------------------------------------------------

PUBLIC = "public"


@attrs.frozen(kw_only=True)
class Endpoint:
    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    role: Role | str | None = None  # None: any valid token; PUBLIC: no token
    body: type | None = None
    params: tuple[Param, ...] = ()
    ok: int = 200
    answer: Any = None  # a response class, or a (media type, description) pair
    errors: tuple[int, ...] = ()


@attrs.define
class Call:
    """One request as an endpoint handler sees it."""

    request: Request
    endpoint: Endpoint
    who: Identity | None
    daemon: Daemon
    tokens: Tokens
    streams: set[trio.CancelScope]
    max_body: int

    def param(self, name: str) -> Any:
        for param in self.endpoint.params:
            if param.name == name:
                return param.parse(self.request)
        raise KeyError(name)

    async def body(self) -> Any:
        """The request body parsed and structured as the endpoint's body class."""
        kind = self.endpoint.body
        assert kind is not None
        data = await self.json()
        try:
            return structure(data, kind)
        except InvalidBody as exc:
            raise HttpError(422, "invalid_body", str(exc), exc.problems) from None

    async def json(self) -> Any:
        declared = self.request.headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                raise HttpError(400, "bad_request", "Content-Length is not a number") from None
            if too_big:
                raise self._too_big()
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise self._too_big()
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            raise HttpError(
                422,
                "invalid_body",
                "the request needs a JSON object as its body",
                [Problem(field="", problem="a JSON object is required")],
            )
        try:
            data = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
        except (ValueError, RecursionError) as exc:
            message = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
            raise HttpError(400, "invalid_json", f"the body is not valid JSON: {message}") from None
        deepest, text = _shape(data)
        if deepest > MAX_DEPTH:
            raise HttpError(
                422,
                "invalid_body",
                f"the body is nested more than {MAX_DEPTH} levels deep",
                [Problem(field="", problem=f"nested more than {MAX_DEPTH} levels deep")],
            )
        if not text:
            field = _first_untext(data, ()) or ""
            problem = (
                "holds a lone surrogate escape (\\ud800 to \\udfff), which is not Unicode "
                "text and cannot be stored"
            )
            raise HttpError(
                422,
                "invalid_body",
                f"{field or 'the body'} {problem}",
                [Problem(field=field, problem=problem)],
            )
        return data

    def _too_big(self) -> HttpError:
        return HttpError(
            413, "too_large", f"the body is larger than the limit of {self.max_body} bytes"
        )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


#: What ``json.loads(raw, parse_constant=..., parse_float=...)`` does, without building a
#: decoder per request.
_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite)


def _shape(value: Any) -> tuple[int, bool]:
    """How deep ``value`` nests (counted up to one level past MAX_DEPTH), and whether
    every string in it, keys included, is Unicode text.

    A string that is not (a lone surrogate) would fail SQLite, the response encoder and
    clients long after the request was accepted: see :mod:`overstory._text`.
    """
    deepest, text, stack = 0, True, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            text = text and is_text(item)
        elif isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                children: Iterable[Any]
                if isinstance(item, dict):
                    text = text and all(is_text(key) for key in item)
                    children = item.values()
                else:
                    children = item
                stack.extend((child, depth + 1) for child in children)
    return deepest, text


def _first_untext(value: Any, path: tuple[str, ...]) -> str | None:
    """The dotted path of the first string in ``value`` that is not Unicode text (for a
    key, the key's own path, spelt by ``ascii()``); ``None`` if there is none. Recursive:
    ``value`` has passed the depth check."""
    if isinstance(value, str):
        return None if is_text(value) else ".".join(path)
    pairs: Any
    if isinstance(value, dict):
        pairs = value.items()
    elif isinstance(value, list):
        pairs = ((str(index), child) for index, child in enumerate(value))
    else:
        return None
    for key, child in pairs:
        if not is_text(key):
            return ".".join((*path, ascii(key)))
        found = _first_untext(child, (*path, key))
        if found is not None:
            return found
    return None


def _goal_id(call: Call) -> str:
    goal_id: str = call.request.path_params["goal_id"]
    return goal_id


def _review_id(call: Call) -> int:
    raw: str = call.request.path_params["review_id"]
    number = decimal_id(raw)
    if number is None or number == 0:
        raise HttpError(404, "not_found", f"no review {raw[:40]!r}")
    return number


def decimal_id(text: str) -> int | None:
    """``text`` as an id (ASCII digits, at most :data:`MAX_ID`), else ``None``.

    Not ``str.isdigit()``: it also accepts ``²`` and other digits ``int()`` refuses or
    reads differently, and ``int()`` refuses over 4,300 digits.
    """
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= MAX_ID else None
