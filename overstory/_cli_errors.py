"""What every ``overstory`` command shares: the exit statuses and :class:`CommandError`.

They live apart from ``overstory._cli`` so that the modules the CLI is split into (and
``overstory.daemon._cli``) can raise and return them without importing the parser.
"""

from __future__ import annotations

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """An expected problem a command reports as one paragraph, then exits ``status``."""

    def __init__(self, message: str, *, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
