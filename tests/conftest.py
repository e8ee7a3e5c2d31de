"""Tests about time take pytest-trio's ``autojump_clock`` fixture (a
``MockClock(autojump_threshold=0)``), so no test sleeps for real. Shared helpers live
in ``support.py``; fixtures that several files use, here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from overstory.daemon._journal import Journal


@pytest.fixture(params=["normal", "full"])
async def journal(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Journal]:
    """A running journal in ``tmp_path``, once per ``synchronous`` setting."""
    opened = Journal.open(tmp_path / "journal.sqlite3", tree="t", synchronous=request.param)
    async with trio.open_nursery() as nursery:
        await nursery.start(opened.run)
        yield opened
        opened.stop()
    opened.close()
