"""The LLM parts' public names: all re-exported by the facade, lists complete and sorted."""

from __future__ import annotations

import overstory as ov
import overstory.llm
import overstory.testing


def test_llm_names_are_reexported_by_the_facade() -> None:
    """Every public name of overstory.llm is the same object as ov.<name>."""
    for name in overstory.llm.__all__:
        assert name in ov.__all__, name
        assert getattr(ov, name) is getattr(overstory.llm, name)


def test_all_lists_are_sorted_and_complete() -> None:
    """__all__ of overstory.llm and overstory.testing are sorted and name only what the
    module defines."""
    for module in (overstory.llm, overstory.testing):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
