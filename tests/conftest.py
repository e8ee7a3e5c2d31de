"""Tests about time take pytest-trio's ``autojump_clock`` fixture (a
``MockClock(autojump_threshold=0)``), so no test sleeps for real. Shared helpers live
in ``support.py``."""
