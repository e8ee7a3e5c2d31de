"""Leaf agents: function leaves and stateful agent classes."""

from overstory.leaves._agent import Agent as Agent
from overstory.leaves._agent import AgentSpec as AgentSpec
from overstory.leaves._leaf import FunctionLeaf as FunctionLeaf
from overstory.leaves._leaf import leaf as leaf

__all__ = ["Agent", "AgentSpec", "FunctionLeaf", "leaf"]
