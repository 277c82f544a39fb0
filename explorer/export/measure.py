"""Measurements fed back from a build (Vivado reports) or a board run, recorded next to the estimates.

A study's finished trials are immutable in Optuna's storage, so measurements live in the trial's artifact
folder (`OUTPUT/trials/NNNNN/measured.json`, keys `build` and `run`), where `explore report` reads them.
An export folder keeps its own copy (`measured.json`) so that exports made without a study keep theirs too.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError
from explorer.export.parsers import parse_board_run, parse_timing_summary, parse_utilization
from explorer.export.writer import EXPORT_SCHEMA

MEASURED_FILE = "measured.json"


def read_measured(folder: Path) -> dict[str, Any]:
    path = folder / MEASURED_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "imported"} == {k: v for k, v in b.items() if k != "imported"}


def record(folder: Path, kind: str, payload: dict[str, Any]) -> tuple[Path, str | None]:
    """Record `payload` as the latest `kind` ("build" or "run") in folder/measured.json (atomic replace).

    Every measurement is kept: the latest under `kind`, all of them in `history`. Returns the file and a
    note when an earlier, different measurement was superseded (None otherwise)."""
    path, note, _ = _record(folder, kind, payload)
    return path, note


def _record(folder: Path, kind: str, payload: dict[str, Any]) -> tuple[Path, str | None, bool]:
    """record(), and whether the measurement was new (False: the same one was already recorded)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = read_measured(folder)
    stored = data.get("history")
    history: list[Any] = stored if isinstance(stored, list) else []
    earlier = data.get(kind) if isinstance(data.get(kind), dict) else None
    note = None
    if earlier is not None and _same(earlier, payload):
        return folder / MEASURED_FILE, f"the same {kind} measurement was already recorded; nothing changed", False
    if earlier is not None:
        if not any(isinstance(h, dict) and h.get("kind") == kind and _same(h.get("record", {}), earlier) for h in history):
            history.append({"kind": kind, "record": earlier})
        note = (
            f"an earlier {kind} measurement (imported {earlier.get('imported', 'at an unknown time')}) is superseded; "
            "it stays in the history of measured.json"
        )
    history.append({"kind": kind, "record": payload})
    data[kind] = payload
    data["history"] = history
    path = folder / MEASURED_FILE
    tmp = folder / f".{MEASURED_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")
    tmp.replace(path)
    return path, note, True


def read_manifest(export_dir: Path) -> dict[str, Any]:
    path = export_dir / "export.json"
    if not path.is_file():
        raise ExplorerError(f"{export_dir}: not an export folder (no export.json); give the folder `explore export` wrote")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExplorerError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); export the design point again") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != EXPORT_SCHEMA:
        raise ExplorerError(f"{path}: not an export manifest (schema {EXPORT_SCHEMA!r}); export the design point again")
    return manifest


def _same_device(report_device: str, part: str) -> bool:
    def norm(text: str) -> str:
        text = text.lower()
        return text[2:] if text.startswith("xc") else text

    return not report_device or norm(part).startswith(norm(report_device)) or norm(report_device).startswith(norm(part))


def build_measurement(export_dir: Path, utilization: Path | None = None, timing: Path | None = None) -> dict[str, Any]:
    """Measured resources and timing of a built export, with the estimates they are compared to."""
    manifest = read_manifest(export_dir)
    util_path = utilization or export_dir / "reports" / "utilization.rpt"
    timing_path = timing or export_dir / "reports" / "timing_summary.rpt"
    for path, what in ((util_path, "utilization"), (timing_path, "timing summary")):
        if not path.is_file():
            raise ExplorerError(f"{path}: no {what} report; build first (vivado -mode batch -source build.tcl) or pass its path")
    util = parse_utilization(util_path.read_text(errors="replace"))
    if not _same_device(util.device, manifest["part"]):
        raise ExplorerError(f"{util_path} is for device {util.device}, but this export is for {manifest['part']}")
    summary = parse_timing_summary(timing_path.read_text(errors="replace"))
    return {
        "source": f"measured: {util.tool_version or 'Vivado'} reports ({util.design_state or 'unknown state'})",
        "imported": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": util.device,
        "resources": util.used,
        "available": util.available,
        "estimate": manifest["estimate"]["resources"],
        "clock_mhz": manifest["dpu"]["clock_mhz"],
        "timing_met": summary.met,
        "wns_ns": summary.wns_ns,
        "whs_ns": summary.whs_ns,
        "dpu_fmax_mhz": summary.dpu_fmax_mhz(),
        "timing": summary.to_dict(),
        "reports": {"utilization": str(util_path.resolve()), "timing_summary": str(timing_path.resolve())},
    }


def run_measurement(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ExplorerError(f"{path}: no such file (the JSON that deploy/run_on_board.py printed)")
    data = parse_board_run(path.read_text())
    data["imported"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    data["file"] = str(path.resolve())
    return data


# --- the study's measurement store -------------------------------------------------------------------------

STORE_FILE = "measurements.jsonl"
STORE_SCHEMA = "dpu-explorer/measurement/1"


@dataclass(frozen=True)
class StudyTrial:
    """A finished trial of a study, as the measurement store names it (the study layer builds it)."""

    output: Path  # the study's output folder
    study: str  # its name
    model: Path  # the study's model
    board: str
    trial: int
    folder: Path  # the trial's artifact folder


def store_entry(where: StudyTrial, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One line of the study's measurement store: what was measured ("run": FPS and latency on a board or
    host; "build": resources and timing from Vivado), on which design point of which model, where and when,
    beside what the model estimated for it."""
    from explorer.fileio import file_digest

    folder = where.folder
    metrics: dict[str, Any] = {}
    if (folder / "metrics.json").is_file():
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            metrics = {}
    model = where.model
    entry: dict[str, Any] = {
        "schema": STORE_SCHEMA,
        "kind": kind,
        "study": where.study,
        "trial": where.trial,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"path": str(model), "digest": file_digest(model) if model.is_file() else None},
        "design_point": metrics.get("design_point"),
        "board": payload.get("board", where.board),
    }
    estimates = metrics.get("metrics", {}) if isinstance(metrics.get("metrics"), dict) else {}
    if kind == "run":
        latency = payload.get("latency_ms")
        entry.update(
            source=f"measured: board run ({payload.get('runtime', 'vart')}) on {payload.get('host') or payload.get('board')}",
            runtime=payload.get("runtime", "vart"),
            host=payload.get("host"),
            cpu=payload.get("cpu"),
            threads=payload.get("threads"),
            frames=payload.get("frames"),
            timed="e2e",  # run_on_board.py times the whole model, DPU and CPU parts, without pre/post-processing
            pre_post_included=False,
            measured={
                "fps_single": payload["fps_single"],
                "fps_multi": payload["fps_multi"],
                "latency_ms": latency.get("median") if isinstance(latency, dict) else latency,
                "dpu_ms": payload.get("dpu_ms"),
                "cpu_ms": payload.get("cpu_ms"),
            },
            estimate={k: estimates.get(k) for k in ("fps_single", "fps_multi", "latency_ms", "dpu_ms", "cpu_ms")},
        )
    else:
        entry.update(
            source=f"measured: {payload.get('source', 'Vivado reports')}",
            measured={
                **payload.get("resources", {}),
                "timing_met": payload.get("timing_met"),
                "wns_ns": payload.get("wns_ns"),
                "clock_mhz": payload.get("clock_mhz"),
                "dpu_fmax_mhz": payload.get("dpu_fmax_mhz"),
            },
            estimate=payload.get("estimate", {}).get("resources"),
        )
    if payload.get("measured_with"):
        entry["measured_with"] = payload["measured_with"]
    return entry


def record_trial(where: StudyTrial, kind: str, payload: dict[str, Any]) -> tuple[Path, str | None]:
    """Record a measurement of a study's trial: in the trial's folder (measured.json, read by the report) and
    as one appended line of the study's store (OUTPUT/measurements.jsonl), which keeps every measurement ever
    recorded for the study. A measurement already recorded is not appended again."""
    place, note, new = _record(where.folder, kind, payload)
    if new:
        line = json.dumps(store_entry(where, kind, payload), default=float, sort_keys=True)
        with (where.output / STORE_FILE).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return place, note


def read_store(output: Path) -> tuple[list[dict[str, Any]], int]:
    """(the store's entries, oldest first; the number of lines that could not be read: a line torn by a crash
    mid-write, or edited by hand)."""
    path = Path(output) / STORE_FILE
    if not path.is_file():
        return [], 0
    entries: list[dict[str, Any]] = []
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(entry, dict) and entry.get("schema") == STORE_SCHEMA:
            entries.append(entry)
        else:
            bad += 1
    return entries, bad
