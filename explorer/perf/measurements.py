"""Measurements made on a board, as a CSV file anyone can write (issue #14).

Columns (a header row; names as below, any order):

- `model`: the ONNX file, relative to the CSV;
- `fps` or `latency_ms` (one of them; latency is one frame, one thread);
- `threads`: application threads (1 = single-thread latency; default 1);
- any `DpuConfig` field by its name (`arch`, `cores`, `clock_mhz`, `ip_version`, `ram_usage`, ...); fields not
  given take the board's defaults;
- optional `split` (cut index), `cpu_precision` (`fp32` or `int8`: the CPU part's), `input_shape`
  (`1x3x224x224`), `timed` (`e2e`, the default: the whole frame; `dpu`: the DPU subgraphs alone, as
  `vaitrace` or `xdputil benchmark` report), `pre_ms` and `post_ms` (the pre/post-processing the
  measurement includes), `source` (free text: where the number comes from).

Every problem names the file, the row and the column.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError

CONFIG_FIELDS = (
    "arch",
    "cores",
    "ram_usage",
    "dsp_usage",
    "uram_per_core",
    "depthwise",
    "avg_pool",
    "softmax",
    "channel_augmentation",
    "elew_mult",
    "relu_type",
    "alu_parallel",
    "alu_leakyrelu",
    "save_argmax",
    "clock_gating",
    "dsp_cascade",
    "clock_mhz",
    "ip_version",
)
OTHER_FIELDS = (
    "model",
    "fps",
    "latency_ms",
    "threads",
    "split",
    "cpu_precision",
    "input_shape",
    "timed",
    "pre_ms",
    "post_ms",
    "source",
)
CPU_PRECISIONS = ("fp32", "int8")
TIMED = ("e2e", "dpu")
_TEXT_FIELDS = ("arch", "ip_version", "ram_usage", "dsp_usage", "relu_type")  # "3.4" is a version, not a number


@dataclass(frozen=True)
class Measurement:
    """One measured number, with everything needed to predict it."""

    model: Path
    metric: str  # fps_single | fps_multi | latency_ms | dpu_ms
    value: float
    threads: int = 1
    dpu: Mapping[str, Any] = field(default_factory=dict)  # DpuConfig fields given; the rest are the board's
    split: int | None = None
    input_shape: tuple[int, ...] | None = None
    cpu_precision: str = "fp32"
    pre_ms: float = 0.0
    post_ms: float = 0.0
    source: str = ""
    where: str = ""  # file:row, for messages

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "metric": self.metric,
            "value": self.value,
            "threads": self.threads,
            "dpu": dict(self.dpu),
            "split": self.split,
            "cpu_precision": self.cpu_precision,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "pre_ms": self.pre_ms,
            "post_ms": self.post_ms,
            "source": self.source,
        }


def _number(raw: str, where: str, column: str, *, integer: bool = False) -> float:
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError as exc:
        kind = "an integer" if integer else "a number"
        raise ExplorerError(f"{where}: column {column!r}: expected {kind}, got {raw!r}") from exc
    if not math.isfinite(value):
        raise ExplorerError(f"{where}: column {column!r}: expected a finite number, got {raw!r}")
    return value


def _config_value(raw: str) -> Any:
    """A DpuConfig field as the YAML of a study would give it: numbers, booleans, or text."""
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _row(values: Mapping[str, str], base: Path, where: str) -> Measurement:
    given = {k: v.strip() for k, v in values.items() if k and v is not None and v.strip()}
    if "model" not in given:
        raise ExplorerError(f"{where}: column 'model' is empty: name the ONNX file (relative to the CSV)")
    if ("fps" in given) == ("latency_ms" in given):
        raise ExplorerError(f"{where}: give exactly one of 'fps' and 'latency_ms'")
    threads = int(_number(given.get("threads", "1"), where, "threads", integer=True))
    if threads < 1:
        raise ExplorerError(f"{where}: column 'threads': at least 1, got {threads}")
    timed = given.get("timed", "e2e")
    if timed not in TIMED:
        raise ExplorerError(f"{where}: column 'timed': expected one of {', '.join(TIMED)}, got {timed!r}")
    if "fps" in given:
        value = _number(given["fps"], where, "fps")
        if timed == "dpu":
            raise ExplorerError(f"{where}: timed 'dpu' takes latency_ms (the DPU subgraphs' time), not fps")
        metric = "fps_single" if threads == 1 else "fps_multi"
    else:
        value = _number(given["latency_ms"], where, "latency_ms")
        metric = "dpu_ms" if timed == "dpu" else "latency_ms"
        if threads != 1 and metric == "latency_ms":
            raise ExplorerError(f"{where}: latency_ms is one frame on one thread; give threads 1 (or fps)")
    if value <= 0:
        raise ExplorerError(f"{where}: the measured value must be positive, got {value}")
    split = int(_number(given["split"], where, "split", integer=True)) if "split" in given else None
    shape = None
    if "input_shape" in given:
        try:
            shape = tuple(int(d) for d in given["input_shape"].replace(",", "x").split("x"))
        except ValueError as exc:
            raise ExplorerError(f"{where}: column 'input_shape': expected 1x3x224x224, got {given['input_shape']!r}") from exc
    precision = given.get("cpu_precision", "fp32")
    if precision not in CPU_PRECISIONS:
        raise ExplorerError(f"{where}: column 'cpu_precision': expected one of {', '.join(CPU_PRECISIONS)}, got {precision!r}")
    times = {k: _number(given[k], where, k) for k in ("pre_ms", "post_ms") if k in given}
    model = Path(given["model"])
    return Measurement(
        model=model if model.is_absolute() else (base / model),
        metric=metric,
        value=value,
        threads=threads,
        dpu={k: given[k] if k in _TEXT_FIELDS else _config_value(given[k]) for k in CONFIG_FIELDS if k in given},
        split=split,
        input_shape=shape,
        cpu_precision=precision,
        pre_ms=times.get("pre_ms", 0.0),
        post_ms=times.get("post_ms", 0.0),
        source=given.get("source", ""),
        where=where,
    )


def read_measurements(path: str | Path) -> list[Measurement]:
    """Every row of a measurements CSV (see the module's docstring)."""
    file = Path(path)
    if not file.is_file():
        raise ExplorerError(f"{file}: no such measurements file")
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        unknown = [c for c in columns if c and c not in (*CONFIG_FIELDS, *OTHER_FIELDS)]
        if unknown:
            known = ", ".join((*OTHER_FIELDS, *CONFIG_FIELDS))
            raise ExplorerError(f"{file}: unknown column(s) {', '.join(map(repr, unknown))}; known: {known}")
        if "model" not in columns:
            raise ExplorerError(f"{file}: no 'model' column (the header row names the columns)")
        rows = [
            _row({(k or "").strip(): v for k, v in raw.items()}, file.parent, f"{file}:{n}")
            for n, raw in enumerate(reader, start=2)
        ]
    if not rows:
        raise ExplorerError(f"{file}: no measurement rows")
    return rows


def write_measurements(rows: list[Measurement], path: str | Path) -> None:
    """Write rows as a measurements CSV that read_measurements reads back (model paths relative to the CSV)."""
    file = Path(path)
    used = [k for k in CONFIG_FIELDS if any(k in r.dpu for r in rows)]
    header = ["model", "fps", "latency_ms", "threads", *used, "split", "cpu_precision", "input_shape", "timed"]
    header += ["pre_ms", "post_ms", "source"]
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for r in rows:
            fps = r.metric in ("fps_single", "fps_multi")
            writer.writerow(
                {
                    "model": os.path.relpath(r.model.resolve(), file.parent.resolve()),
                    "fps": repr(r.value) if fps else "",
                    "latency_ms": "" if fps else repr(r.value),
                    "threads": r.threads,
                    **{k: r.dpu[k] for k in used if k in r.dpu},
                    "split": "" if r.split is None else r.split,
                    "cpu_precision": r.cpu_precision,
                    "input_shape": "x".join(map(str, r.input_shape)) if r.input_shape else "",
                    "timed": "dpu" if r.metric == "dpu_ms" else "e2e",
                    "pre_ms": r.pre_ms,
                    "post_ms": r.post_ms,
                    "source": r.source,
                }
            )
