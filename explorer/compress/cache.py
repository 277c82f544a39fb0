"""The compression disk cache: JSON entries by kind (apoz, accuracy) and key, shared by processes.

Writes are atomic (a temporary file renamed over the entry), so concurrent workers never read half an
entry; a damaged entry reads as missing and is recomputed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from explorer.compress import default_cache_dir


class JsonCache:
    def __init__(self, folder: Path | None = None, enabled: bool = True) -> None:
        self.folder = folder or default_cache_dir()
        self.enabled = enabled

    def read(self, kind: str, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        path = self.folder / kind / f"{key}.json"
        try:
            loaded: dict[str, Any] | None = json.loads(path.read_text()) if path.is_file() else None
            return loaded
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is recomputed

    def write(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        if not self.enabled:
            return
        folder = self.folder / kind
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(payload, default=float))
        tmp.replace(folder / f"{key}.json")  # atomic: concurrent workers never read half a file

    def read_arrays(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """Arrays stored by write_arrays (an .npz file), or None."""
        if not self.enabled:
            return None
        path = self.folder / kind / f"{key}.npz"
        try:
            with np.load(path) as loaded:
                return {name: loaded[name] for name in loaded.files}
        except (OSError, ValueError):
            return None  # missing or damaged: recomputed

    def write_arrays(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        folder = self.folder / kind
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(folder / f"{key}.npz")
