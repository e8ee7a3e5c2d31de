"""The README's quickstart is real code: it runs and matches the README."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/quickstart.py runs to SUCCEEDED and prints the drafted email."""
    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.startswith("Status.SUCCEEDED Dear ACME, thanks for 12 orders.")


def test_readme_shows_the_quickstart_verbatim() -> None:
    """The README's quickstart block is the example file's code."""
    readme = (ROOT / "README.md").read_text()
    code = (ROOT / "examples" / "quickstart.py").read_text()
    body = (
        code.split('"""', 2)[2]
        .strip()
        .replace('if __name__ == "__main__":\n    trio.run(main)', "trio.run(main)")
    )
    assert body in readme
