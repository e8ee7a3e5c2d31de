"""The public surface: `__all__` is complete, sorted, and every name resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "overstory",
    "overstory.hierarchy",
    "overstory.supervisors",
    "overstory.leaves",
    "overstory.telemetry",
    "overstory.daemon",
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
    for generic in ("hierarchy", "supervisors", "leaves", "telemetry", "daemon"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(generic)


def test_import_loads_no_telemetry_serialisation_or_model_clients() -> None:
    """`import overstory` loads neither OpenTelemetry, cattrs, the model clients nor httpx."""
    probe = (
        "import sys, overstory as ov\n"
        "heavy = ('opentelemetry', 'cattrs', 'overstory.llm', 'httpx')\n"
        "def loaded(): return sorted({h for h in heavy for m in sys.modules"
        " if m == h or m.startswith(h + '.')})\n"
        "print(loaded())\n"
        "assert ov.llm.LLMRouter is ov.LLMRouter\n"
        "ov.telemetry.configure, ov.OpenAIModel, ov.telemetry.SpanRecord, ov.to_json\n"
        "print(loaded(), 'opentelemetry.sdk' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    before, after = result.stdout.splitlines()
    assert before == "[]"
    assert after == "['cattrs', 'opentelemetry', 'overstory.llm'] True"  # httpx: on a call
