"""A user's function named in a study or on the command line: `module:function` or `path/to/file.py:function`
(a relative path is relative to the study file's folder). Evaluators and the fine-tuning hook load through here."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from explorer.errors import ExplorerError


def hook_file(spec: str, base_dir: Path | None = None) -> Path | None:
    """The file a `file.py:function` spec names (resolved against `base_dir`), None for `module:function`."""
    module_name = spec.rpartition(":")[0]
    if not module_name.endswith(".py"):
        return None
    file = Path(module_name)
    return base_dir / file if not file.is_absolute() and base_dir is not None else file


def load_function(spec: str, base_dir: Path | None, what: str) -> tuple[Callable[..., Any], ModuleType]:
    """(the function, its module) that `spec` names; `what` names the role in messages ("evaluator", ...)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ExplorerError(f"{what} {spec!r}: use module:function or path/to/file.py:function")
    file = hook_file(spec, base_dir)
    if file is not None:
        if not file.is_file():
            raise ExplorerError(f"{what} {spec!r}: no such file {file}")
        loaded = importlib.util.spec_from_file_location(f"explorer_user_{what.replace(' ', '_')}_{file.stem}", file)
        if loaded is None or loaded.loader is None:
            raise ExplorerError(f"{what} {spec!r}: {file} is not a Python module")
        module = importlib.util.module_from_spec(loaded)
        try:
            loaded.loader.exec_module(module)
        except Exception as exc:
            raise ExplorerError(f"{what} {spec!r}: importing {file} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ExplorerError(f"{what} {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise ExplorerError(f"{what} {spec!r}: {module_name} has no function {attr!r}")
    return function, module
