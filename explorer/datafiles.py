"""Where the data folders (hw/, tcl/, search_spaces/, reports/) are.

In a wheel they are packed into `explorer/_data/`; in a source checkout they sit beside the package.
"""

from __future__ import annotations

from pathlib import Path

from explorer.errors import ExplorerError

_PACKAGE = Path(__file__).resolve().parent


def data_path(*parts: str) -> Path:
    """Path of a bundled data file or folder, e.g. `data_path("hw", "boards.yaml")`."""
    for base in (_PACKAGE / "_data", _PACKAGE.parent):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise ExplorerError(
        f"bundled data {'/'.join(parts)!r} not found next to {_PACKAGE}; the installation is incomplete (reinstall dpu-explorer)"
    )
