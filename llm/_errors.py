"""What a model call raises, placed in overstory's exception hierarchy.

::

    Failure                      (retried, reassigned and escalated by supervisors)
    └── ModelError               a model call failed
        ├── ProviderError        429, 5xx, timeout, connection, malformed or too
        │                        large answer, after the client's own retries
        └── InvalidOutput        the answer did not validate, after the repair rounds
    Fatal                        (never retried: the goal fails)
    └── ProviderRejected         the provider refused the request
        ├── AuthenticationFailed 401 or 403: the key is missing, wrong or not allowed
        └── InvalidRequest       any other 4xx: unknown model, bad parameters, too long;
                                 or a 3xx: the base URL is wrong

``trio.Cancelled`` and :class:`~overstory.BudgetExhausted` pass through model calls
unchanged.
"""

from __future__ import annotations

from overstory._errors import Failure, Fatal

__all__ = [
    "AuthenticationFailed",
    "InvalidOutput",
    "InvalidRequest",
    "ModelError",
    "ProviderError",
    "ProviderRejected",
]


class ModelError(Failure):
    """A model call failed; the supervisor retries or reassigns the step as for any failure."""


class ProviderError(ModelError):
    """The provider answered 429 or 5xx, timed out, could not be reached or sent a malformed
    answer, and the client's own retries did not help. Some failures are raised without
    the client retrying them: an answer larger than the client's bound, and one that
    failed after part of its text was streamed to ``on_text``.

    ``status`` is the last HTTP status (``None`` for timeouts and connection errors) and
    ``retry_after`` the last ``Retry-After`` the provider asked for, in seconds.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(path, message)
        self.status = status
        self.retry_after = retry_after


class InvalidOutput(ModelError):
    """The model's answer was not valid (not JSON, wrong shape, failed a check) and the
    repair rounds did not fix it. ``answer`` is the last answer's text."""

    def __init__(self, path: str, message: str, *, answer: str = "") -> None:
        super().__init__(path, message)
        self.answer = answer


class ProviderRejected(Fatal):
    """The provider refused the request with a 4xx status, or redirected it (3xx):
    retrying cannot help."""

    def __init__(self, path: str, status: int, message: str) -> None:
        text = f"HTTP {status}: {message}"
        super().__init__(f"{path}: {text}" if path else text)
        self.path = path
        self.status = status
        self.message = message


class AuthenticationFailed(ProviderRejected):
    """401 or 403: the API key is missing, wrong, or not allowed to use the model."""


class InvalidRequest(ProviderRejected):
    """Any other 4xx: an unknown model, invalid parameters, a prompt that is too long. Also
    a 3xx: a model endpoint that redirects means the base URL is wrong (redirects are not
    followed)."""
