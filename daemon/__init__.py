"""The daemon: run a tree for weeks, accept goals over HTTP, lose nothing.

``overstory serve FILE.py:tree`` runs it; :class:`Client` talks to a running one; and
:func:`serve` runs one inside your own ``trio.run``.
"""

from overstory.daemon._auth import Role as Role
from overstory.daemon._client import ApiError as ApiError
from overstory.daemon._client import Client as Client
from overstory.daemon._client import DaemonError as DaemonError
from overstory.daemon._client import DaemonUnavailable as DaemonUnavailable
from overstory.daemon._config import Config as Config
from overstory.daemon._server import serve as serve

__all__ = [
    "ApiError",
    "Client",
    "Config",
    "DaemonError",
    "DaemonUnavailable",
    "Role",
    "serve",
]
