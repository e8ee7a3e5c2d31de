"""The public surface: `__all__` is complete, sorted, and every name resolves."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "overstory",
    "overstory.hierarchy",
    "overstory.supervisors",
    "overstory.leaves",
    "overstory.telemetry",
]


def isort_style(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions and modules.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    """Every package's __all__ is sorted (isort style) and each name exists."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_style)
    for attribute in exported:
        assert hasattr(module, attribute), attribute


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_every_public_name(name: str) -> None:
    """Every public, non-module name a package defines is in its __all__."""
    module = importlib.import_module(name)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and type(v).__name__ != "module" and n != "annotations"
    }
    public.discard("version")
    public.discard("PackageNotFoundError")
    assert public <= set(module.__all__)


def test_no_generic_top_level_packages() -> None:
    """The repository's folders import only as overstory subpackages."""
    for generic in ("hierarchy", "supervisors", "leaves", "telemetry"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(generic)
