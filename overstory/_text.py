"""Strings that are not Unicode text, and how to keep them from failing later.

JSON can escape a lone UTF-16 surrogate (``"\\ud800"``), and Python code can make one
(``bytes.decode(errors="surrogateescape")``): either way the string holds a code point
that no UTF-8 encoder accepts, so SQLite, a response body, a log line or the next
request to a model would fail on it long after the string arrived. The daemon refuses a
request that carries one (422) and stores and serves a string a goal produces with each
lone surrogate replaced by U+FFFD, as a web browser does; the model client reads an
answer's text the same way.
"""

from __future__ import annotations

__all__ = ["is_text", "scrub", "utf8"]


def is_text(string: str) -> bool:
    """Whether ``string`` is Unicode text: it holds no lone surrogate."""
    if string.isascii():
        return True
    try:
        string.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scrub(string: str) -> str:
    """``string`` with each lone surrogate replaced by U+FFFD (itself when it has none)."""
    if is_text(string):
        return string
    # UTF-16 carries surrogates as code units: a pair decodes to its character, a lone
    # one to U+FFFD.
    return string.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def utf8(string: str) -> bytes:
    """``string`` encoded as UTF-8, each lone surrogate as U+FFFD."""
    try:
        return string.encode("utf-8")
    except UnicodeEncodeError:
        return scrub(string).encode("utf-8")
