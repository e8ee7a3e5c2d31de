"""A failure's stack trace as span events carry it (``exception.stacktrace``), formatted
without the cost of :func:`traceback.format_exception`."""

from __future__ import annotations

import linecache
import traceback

from overstory._errors import error_text

__all__ = ["stacktrace", "type_name"]

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def type_name(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return (
        kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"
    )


def stacktrace(error: BaseException) -> str:
    """``error``'s traceback (and its chained causes) in Python's usual layout, without
    the column carets and without re-checking every source file on disk.

    ``traceback.format_exception`` stats each file (``linecache.checkcache``) and, on
    3.11+, re-parses each source line to place carets: about 1.5 ms for a failure raised
    through the runtime, which would make a failed attempt's span cost more than all the
    other spans of its goal together.
    """
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = error
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for index in range(len(chain) - 1, -1, -1):
        each, _ = chain[index]
        if each.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            for frame, lineno in traceback.walk_tb(each.__traceback__):
                code = frame.f_code
                parts.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
                line = linecache.getline(code.co_filename, lineno, frame.f_globals).strip()
                if line:
                    parts.append(f"    {line}\n")
        message = error_text(each)
        parts.append(f"{type_name(each)}: {message}\n" if message else f"{type_name(each)}\n")
        if index:
            parts.append(chain[index][1])
    return "".join(parts)
