"""Benchmarks: run as modules (``python -m benchmarks.telemetry_cost``); not tests."""
