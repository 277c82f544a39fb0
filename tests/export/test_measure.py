"""Recording measurements: the latest of each kind, and every one kept in the history."""

from __future__ import annotations

import json
from pathlib import Path

from explorer.export.measure import read_measured, record


def test_measurements_keep_their_history(tmp_path: Path) -> None:
    first = {"fps_single": 10.0, "imported": "2026-01-01T00:00:00"}
    second = {"fps_single": 12.0, "imported": "2026-01-02T00:00:00"}
    path, note = record(tmp_path, "run", first)
    assert note is None and read_measured(tmp_path)["run"] == first
    _, note = record(tmp_path, "run", {**first, "imported": "2026-01-03T00:00:00"})
    assert note is not None and "already recorded" in note  # the same numbers again: nothing changes
    _, note = record(tmp_path, "run", second)
    assert note is not None and "2026-01-01T00:00:00" in note and "superseded" in note
    record(tmp_path, "build", {"lut": 1.0})
    data = json.loads(path.read_text())
    assert data["run"] == second and data["build"] == {"lut": 1.0}
    assert [(h["kind"], h["record"]) for h in data["history"]] == [("run", first), ("run", second), ("build", {"lut": 1.0})]
