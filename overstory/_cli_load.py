"""Loading the ``TARGET`` of ``overstory run``, ``check`` and ``serve``: the ``ov.Tree``
that ``path/to/file.py:NAME`` or ``package.module:NAME`` names.

Every way loading can fail becomes a one-paragraph :class:`CommandError`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from overstory._cli_errors import CommandError
from overstory._errors import DefinitionError
from overstory.hierarchy._tree import Tree

__all__ = ["load_tree"]

_module_numbers = itertools.count(1)


def load_tree(target: str) -> Tree:
    """Import TARGET (``path/to/file.py:NAME`` or ``package.module:NAME``) and return the
    ``ov.Tree`` it names.

    A file is imported as a fresh module with a unique name (``__name__`` is not
    ``"__main__"``), with its directory first on ``sys.path`` while it is imported, so it
    can import modules next to it. A module is imported with the current directory on
    ``sys.path``, as ``python -m`` does. Raises :class:`CommandError` with one paragraph
    for a missing file or module, an error raised on import, an invalid tree definition,
    a missing attribute or one that is not a tree.
    """
    source, colon, name = target.rpartition(":")
    if not colon or not source or not name:
        base = source if colon else target
        example = f"{base}:tree" if base else "examples/agency.py:tree"
        raise CommandError(
            f"TARGET {target!r} must be path/to/file.py:NAME or package.module:NAME, "
            f"naming an ov.Tree (for example {example})"
        )
    if source.endswith(".py") or "/" in source or os.sep in source:
        module = _import_file(target, Path(source))
        where = source
    else:
        module = _import_module(target, source)
        where = f"module {source}"
    value = getattr(module, name, _MISSING)
    if isinstance(value, Tree):
        return value
    trees = sorted(key for key, item in vars(module).items() if isinstance(item, Tree))
    known = f"the trees it defines: {', '.join(trees)}" if trees else "it defines no ov.Tree at all"
    if value is _MISSING:
        raise CommandError(f"cannot load {target!r}: {where} has no attribute {name!r}; {known}")
    raise CommandError(
        f"cannot load {target!r}: {name} is {_a(type(value).__name__)}, not an ov.Tree; {known}"
    )


_MISSING = object()


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _import_file(target: str, path: Path) -> ModuleType:
    if not path.exists():
        hint = ""
        if path.suffix != ".py" and path.with_name(path.name + ".py").is_file():
            hint = f" (did you mean {path}.py:{target.rpartition(':')[2]}?)"
        raise CommandError(f"cannot load {target!r}: file {path} not found{hint}")
    if path.is_dir():
        raise CommandError(f"cannot load {target!r}: {path} is a directory, not a Python file")
    unique = f"overstory_target_{next(_module_numbers)}_{_identifier(path.stem)}"
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise CommandError(f"cannot load {target!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    directory = str(path.resolve().parent)
    sys.modules[unique] = module
    with _on_sys_path(directory):
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[unique]
            raise CommandError(_import_failure(target, exc, unique)) from exc
    return module


def _import_module(target: str, name: str) -> ModuleType:
    with _on_sys_path(os.getcwd()):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise CommandError(
                    f"cannot load {target!r}: no module named {exc.name!r} (is it installed, "
                    "or in the current directory?)"
                ) from exc
            raise CommandError(_import_failure(target, exc, name)) from exc
        except Exception as exc:
            raise CommandError(_import_failure(target, exc, name)) from exc


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` for the block, unless it is there already."""
    if directory in sys.path:
        yield
        return
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # the module may have removed it itself
            sys.path.remove(directory)


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _import_failure(target: str, exc: Exception, module: str) -> str:
    prefix = f"cannot load {target!r}: "
    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename).name}, line {exc.lineno})" if exc.filename else ""
        return f"{prefix}{type(exc).__name__}: {exc.msg}{where}"
    if isinstance(exc, DefinitionError):
        return f"{prefix}the tree definition is invalid: {exc}{_location(exc, module)}"
    return f"{prefix}importing it raised {type(exc).__name__}: {exc}{_location(exc, module)}"


def _location(exc: BaseException, module: str) -> str:
    """`` (file.py, line N)``: the innermost line of ``module`` (or one of its parent
    packages) that the error passed through, or ``""``."""
    line = ""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__")
        if isinstance(name, str) and (module == name or module.startswith(name + ".")):
            line = f" ({Path(tb.tb_frame.f_code.co_filename).name}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return line
