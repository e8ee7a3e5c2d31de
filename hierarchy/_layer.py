"""The three layers of a tree, as telemetry and the outcome name them."""

from __future__ import annotations

import enum

__all__ = ["Layer"]


class Layer(enum.Enum):
    """Where a node sits: strategic supervisors plan, tactical ones route, leaves work."""

    STRATEGIC = "strategic"
    TACTICAL = "tactical"
    LEAF = "leaf"
