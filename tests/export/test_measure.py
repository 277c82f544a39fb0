"""Recording measurements: the latest of each kind, and every one kept in the history."""

from __future__ import annotations

import json
from pathlib import Path

from explorer.export.measure import STORE_FILE, STORE_SCHEMA, read_measured, read_store, record


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


def test_the_store_skips_a_torn_line_and_keeps_the_rest(tmp_path: Path) -> None:
    entry = {"schema": STORE_SCHEMA, "kind": "run", "trial": 3, "measured": {"fps_single": 10.0}}
    lines = [json.dumps(entry), '{"schema": "' + STORE_SCHEMA + '", "kind": "ru', json.dumps({"schema": "other"}), ""]
    (tmp_path / STORE_FILE).write_text("\n".join(lines))
    entries, bad = read_store(tmp_path)
    assert entries == [entry] and bad == 2
    assert read_store(tmp_path / "nothing") == ([], 0)
