"""overstory's benchmark suite: programs, not tests (see ``benchmarks/README.md``).

``python -m benchmarks`` runs it. Every measurement runs in a fresh subprocess that
prints one JSON line; the parent aggregates medians, ranges and pair-by-pair ratios.
"""

from __future__ import annotations

import os
import sys

# Run from the repository root, ``python -m`` puts the root first on sys.path, where the
# folder ``overstory/`` holds only the facade (its subpackages live in sibling folders
# and resolve through the installed package). Drop the root so ``import overstory``
# finds the installed (or editable) package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]
