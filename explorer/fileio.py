"""Reading user files (YAML/JSON) with errors a user can act on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

import yaml

from explorer.errors import ExplorerError

# The bundled data files (hardware tables, read at every start) go through libyaml's loader when PyYAML was
# built with it (about ten times faster), the pure-Python one otherwise. Both build the same plain data.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: str | IO[str]) -> Any:
    """yaml.safe_load, with libyaml where available: for the project's own data files."""
    return yaml.load(stream, Loader=_LOADER)


def load_mapping_file(path: str | Path) -> Any:
    """Parse a YAML or JSON file (by suffix; YAML otherwise). Errors name the file and the line."""
    file = Path(path)
    if not file.is_file():
        raise ExplorerError(f"{file}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExplorerError(f"{file}: cannot read: {exc}") from exc
    if file.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExplorerError(f"{file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    try:
        return safe_load(text)
    except yaml.YAMLError:
        pass
    try:  # a broken file: the pure-Python loader says more about where and why than libyaml
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ExplorerError(f"{where}: invalid YAML: {problem}") from exc


def file_digest(path: Path) -> str:
    """A short SHA-256 of a file's bytes, read in 1 MB chunks (model identity for caches and records)."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]
