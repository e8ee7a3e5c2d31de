"""The installed distribution's version, read from its metadata when first asked for."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("overstory")
except PackageNotFoundError:  # pragma: no cover - running from a tree without metadata
    __version__ = "0+unknown"
