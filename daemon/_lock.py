"""One daemon per state directory: an exclusive ``flock`` on ``state_dir/lock``.

Two daemons on one journal would each resume the other's running goals and run them
twice. The lock is the kernel's: it is released when the holding process exits in any
way, ``kill -9`` included, so a restart after a crash never finds a stale lock. The file
itself stays (removing it would let a third process lock a new file while a second
still waits on the old one); it holds the pid of the daemon that last locked it.
"""

from __future__ import annotations

import os
from pathlib import Path

from overstory._errors import ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no guard
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "StateLock"]

LOCK_FILE = "lock"


class StateLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process's end)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise :class:`ConfigurationError` naming the state
        directory and the pid that holds it; never waits."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ConfigurationError(
                    f"the state directory {self.path.parent} is in use by another daemon "
                    f"(pid {holder}); stop it, or give this one its own --state-dir"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the file does); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
