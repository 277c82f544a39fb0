"""Published measurements the latency model is fitted to and checked against: the rows are data
(`published_rows.yaml` beside this file, each with its source, docs/calibration.md); this module predicts
them with the model (`predict`, `errors`) for bench/latency_fit.py and the tests. It is not part of the
installed package: it needs the reference networks of reference/zoo.py.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from explorer.graph.layers import ModelGraph, analyze
from explorer.graph.loader import prepare_model
from explorer.graph.passes import normalize
from explorer.hardware.config import parse_dpu_config
from explorer.hardware.database import Board, Cpu, HwDatabase, load_database
from explorer.perf.cpu import cpu_layer_ms
from explorer.perf.estimate import EstimateOptions, Estimator
from explorer.perf.params import LatencyParams, load_params
from reference.zoo import REFERENCE_MODELS


@dataclass(frozen=True)
class Row:
    name: str
    model: str
    metric: str  # dpu_ms | fps_single | fps_multi | cpu_ms
    published: float
    source: str
    fitted: bool
    board: str = "zcu102"
    dpu: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    cpu: Cpu | None = None  # for cpu_ms rows


@dataclass(frozen=True)
class RatioCheck:
    """Seed 002: a 12-block MobileNetV2-SSD at 1024x1024, one B512 vs one B4096 at 325 MHz on a ZCU102."""

    model: str
    board: str
    b512_ms: float
    b4096_ms: float
    ratio_low: float
    ratio_high: float
    dpu: dict[str, Any]


@dataclass(frozen=True)
class ScalingRow:
    """One network on a smaller and a larger architecture: the published ratio of their DPU times (see the data file)."""

    name: str
    model: str
    small: str
    large: str
    published_ratio: float
    source: str
    fitted: bool
    board: str = "zcu102"
    dpu: dict[str, Any] = field(default_factory=dict)


DATA = Path(__file__).with_name("published_rows.yaml")


def _load() -> tuple[tuple[Row, ...], tuple[ScalingRow, ...], RatioCheck]:
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    rows = tuple(
        Row(**{**r, "cpu": Cpu(r["cpu"]["kind"], r["cpu"]["cores"], r["cpu"]["clock_mhz"]) if "cpu" in r else None})
        for r in data["rows"]
    )
    return rows, tuple(ScalingRow(**s) for s in data["scaling"]), RatioCheck(**data["seed002"])


ROWS, SCALING, SEED002 = _load()


@functools.cache
def reference_graph(name: str) -> ModelGraph:
    return analyze(normalize(prepare_model(REFERENCE_MODELS[name]())))


def _board(db: HwDatabase, name: str) -> Board:
    return db.board(name)


def predict(row: Row, params: LatencyParams | None = None, db: HwDatabase | None = None) -> float:
    db = db or load_database()
    params = params or load_params()
    graph = reference_graph(row.model)
    if row.metric == "cpu_ms":
        assert row.cpu is not None
        return sum(cpu_layer_ms(layer, row.cpu, params, row.threads or 1) for layer in graph.layers)
    board = _board(db, row.board)
    config = parse_dpu_config(row.dpu, board, db=db)
    estimate = Estimator(graph, board, params, db).estimate(config, None, EstimateOptions(threads=row.threads))
    return float(getattr(estimate, row.metric))


def dpu_times(
    model: str,
    board_name: str,
    dpu: dict[str, Any],
    archs: tuple[str, ...],
    params: LatencyParams | None = None,
    db: HwDatabase | None = None,
) -> tuple[float, ...]:
    """One core's DPU time (ms) of a reference network for each architecture."""
    db = db or load_database()
    board = db.board(board_name)
    est = Estimator(reference_graph(model), board, params or load_params(), db)
    return tuple(est.estimate(parse_dpu_config({**dpu, "arch": arch}, board, db=db)).dpu_ms for arch in archs)


def seed002_times(params: LatencyParams | None = None, db: HwDatabase | None = None) -> tuple[float, float]:
    """DPU time of seed 002's detector on one B512 and one B4096 (ms)."""
    b512, b4096 = dpu_times(SEED002.model, SEED002.board, SEED002.dpu, ("B512", "B4096"), params, db)
    return b512, b4096


def scaling_ratio(check: ScalingRow, params: LatencyParams | None = None, db: HwDatabase | None = None) -> float:
    small, large = dpu_times(check.model, check.board, check.dpu, (check.small, check.large), params, db)
    return small / large


@dataclass(frozen=True)
class RowResult:
    row: Row
    predicted: float

    @property
    def error(self) -> float:
        return (self.predicted - self.row.published) / self.row.published


def errors(rows: tuple[Row, ...] = ROWS, params: LatencyParams | None = None) -> list[RowResult]:
    """The model's prediction of every row, beside the published number."""
    return [RowResult(row, predict(row, params)) for row in rows]


def median_abs_error(results: list[RowResult]) -> float:
    return statistics.median(abs(r.error) for r in results)


def log_residuals(results: list[RowResult]) -> list[float]:
    return [math.log(r.predicted / r.row.published) for r in results]
