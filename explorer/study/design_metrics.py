"""Evaluate one design point: resources and fit, latency and FPS (source: model) and accuracy (measured).

Plain Python: this module never imports optuna. Everything that does not change between trials is
built once in `StudyContext` (data, the compression context, one latency Estimator per pruned model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from explorer.compress.context import CompressionContext, CompressOptions
from explorer.data.loaders import Dataset, load_data
from explorer.errors import ExplorerError
from explorer.evaluators.builtin import load_evaluator
from explorer.graph.loader import graph_inputs, read_model
from explorer.hardware.config import DpuSpec, resolve
from explorer.hardware.database import load_database
from explorer.hardware.fingerprint import arch_json
from explorer.hardware.resources import FitReport, ResourceEstimate, check_fit, estimate_resources, peak_gops
from explorer.perf.calibrate import read_profile
from explorer.perf.compare import compare_layers, to_columns
from explorer.perf.dpu import geometry
from explorer.perf.estimate import EstimateOptions, Estimator, LayerTimes, PerfEstimate
from explorer.perf.params import LatencyParams
from explorer.perf.uncertainty import ErrorModel
from explorer.recent import Recent
from explorer.study.config import StudyConfig
from explorer.study.record import DesignDetails, SubgraphSummary
from explorer.study.search_space import DesignPoint, SearchSpace, board_facts, thresholds_by_effect


@dataclass(frozen=True)
class Metrics:
    """One design point's metrics, their sources and constraints, and what the report shows beside them."""

    values: dict[str, float]
    sources: dict[str, str]  # metric -> "model" (estimate) or "measured"
    constraints: dict[str, float]  # name -> value; <= 0 is feasible
    details: DesignDetails
    arch_json: str  # the arch.json file text
    accuracy_cached: bool = False
    pruned_channels: dict[str, int] = field(default_factory=dict)
    accuracy_key: str = ""  # the compressed model's identity (CompressionContext.key)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())


@dataclass(frozen=True)
class HardwareMetrics:
    """What a design point's DPU configuration decides (all estimates): resource and performance metrics, and the fit."""

    values: dict[str, float]
    spec: DpuSpec
    fit: FitReport
    perf: PerfEstimate


VARIANTS_KEPT = 256  # model variants whose latency estimator a study keeps (the most recently used)
STUDY_SHAPE_KEY = "model.input_shape in the study"


def model_input_names(cfg: StudyConfig) -> list[str]:
    return [i.name for i in graph_inputs(read_model(cfg.model.path))]


def study_calibration(cfg: StudyConfig, names: list[str], data: Dataset | None = None) -> Dataset:
    """The study's calibration data (also the APoZ data): `calibration_data`, else the first 100 samples of `data`."""
    if cfg.data.calibration:
        return load_data(cfg.data.calibration, names, cfg.base_dir)
    return (data or load_data(cfg.data.evaluation, names, cfg.base_dir)).head(100)


def compress_options(point: DesignPoint, cfg: StudyConfig) -> CompressOptions:
    """What the model side of a design point depends on: pruning and its recovery, split and the quantized nodes."""
    return CompressOptions(
        dict(point.prune),
        point.prune_multiple,
        point.prune_groups,
        "all" if point.cpu_precision == "int8" else "dpu",
        cfg.quantization.calibration,
        point.split,
        cfg.pruning.recovery,
        resolve(point.dpu).arch.ocp if cfg.pruning.abstain and point.prune else 0,
        cfg.pruning.finetune if point.prune else None,
        cfg.pruning.rounds,
        cfg.pruning.selection,
    )


def check_trial_model(
    compression: CompressionContext, options: CompressOptions, details: DesignDetails | None, trial: int
) -> None:
    """Refuse to rebuild trial `trial`'s model when it would keep other channels than the model the trial measured
    (recorded in its details since 2026-12-03; the pruning's channel selection or the model changed since)."""
    if details is None or not details.kept_channels:
        return
    if compression.variant(options).digest != details.kept_channels:
        raise ExplorerError(
            f"trial {trial} measured a model that kept other channels than this version keeps for its design point "
            "(the pruning's channel selection or the model file changed since the trial ran); set the study's pruning "
            "section as it was when the trial ran (`pruning: {selection: apoz}` for a study from before 2026-12-03; "
            f"the selection is {options.selection!r} now), or run the study again"
        )


def trial_compression(cfg: StudyConfig) -> CompressionContext:
    """What rebuilds a study trial's model outside the study (export, calibration from board runs): the study's
    calibration data for both roles, so APoZ, and so the pruning, is the trial's (read from its cache)."""
    calibration = study_calibration(cfg, model_input_names(cfg))
    return CompressionContext(
        cfg.model.path,
        calibration,
        calibration,
        load_evaluator(cfg.data.evaluator, cfg.base_dir),
        cfg.store.cache_dir,
        use_cache=cfg.store.cache_enabled,
        input_shapes=cfg.model.input_shape,
        shape_option=STUDY_SHAPE_KEY,
        hard=cfg.quantization.hard_activations,
    )


class StudyContext:
    def __init__(self, cfg: StudyConfig, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.db = load_database()
        self.board = self.db.board(cfg.board)
        names = model_input_names(cfg)
        data = load_data(cfg.data.evaluation, names, cfg.base_dir)
        calibration = study_calibration(cfg, names, data)
        self.compression = CompressionContext(
            cfg.model.path,
            data,
            calibration,
            load_evaluator(cfg.data.evaluator, cfg.base_dir),
            cache_dir or cfg.store.cache_dir,
            use_cache=cfg.store.cache_enabled,
            input_shapes=cfg.model.input_shape,
            shape_option=STUDY_SHAPE_KEY,
            hard=cfg.quantization.hard_activations,
        )
        self.layers = len(self.compression.graph.layers)
        self.space: SearchSpace = cfg.space.bind(self.layers)
        if any(p.by_effect for p in self.space.params):  # thresholds offered by what they prune (the APoZ, cached)
            report = self.compression.apoz(self.space.prune_groups)
            by_group = {g: [c.apoz.tolist() for c in report.clusters if c.group == g] for g in report.groups}
            self.space = thresholds_by_effect(self.space, by_group)
        self.facts = board_facts(self.board)
        self._estimators: Recent[tuple[Any, ...], Estimator] = Recent(VARIANTS_KEPT)
        self.layer_times = LayerTimes()  # DPU layer times by geometry, shared by the variants' estimators
        self.params: LatencyParams | None = None  # the shipped fit unless the study names a calibration profile
        self.errors: ErrorModel | None = None  # ... and the spread of its intervals
        if cfg.estimator.calibration is not None:
            profile = read_profile(cfg.estimator.calibration)
            self.params, self.errors = profile.params(self.board), profile.error_model(self.board)

    def options(self, point: DesignPoint) -> CompressOptions:
        return compress_options(point, self.cfg)

    def estimator(self, options: CompressOptions) -> Estimator:
        key = options.pruning_key
        return self._estimators.get_or_make(
            key,
            lambda: Estimator(
                self.compression.variant(options).graph,
                self.board,
                self.params,
                db=self.db,
                errors=self.errors,
                layer_times=self.layer_times,
            ),
        )

    def metrics(self, point: DesignPoint) -> Metrics:
        options = self.options(point)
        estimator = self.estimator(options)
        placements = estimator.placements(point.dpu, point.split)
        accuracy = self.compression.measure_accuracy(options, point.dpu, placements)
        hw = self.hardware(point, estimator)
        values: dict[str, float] = {
            **hw.values,
            "macs": float(accuracy.macs_after),
            "params": float(accuracy.params_after),
            **accuracy.metrics,
            **accuracy.fidelity,
        }
        sources = {k: "model" for k in values}
        sources.update({k: "measured" for k in [*accuracy.metrics, *accuracy.fidelity]})
        constraints = self.constraints(values, hw)
        spec, fit, perf = hw.spec, hw.fit, hw.perf
        part = perf.partition
        arch = arch_json(spec)
        details = DesignDetails(
            fits=fit.fits,
            fingerprint=arch.fingerprint_hex,
            target=arch.target,
            partition=tuple(
                SubgraphSummary(s.device, tuple(estimator.graph.layers[i].name for i in s.layers), s.time_ms, s.host_ms)
                for s in perf.subgraphs
            ),
            cpu_reasons={estimator.graph.layers[i].name: part.placements[i].reason for i in part.cpu_layers},
            latency_split_ms={
                "dpu": perf.dpu_ms,
                "cpu": perf.cpu_ms,
                "transfers": perf.host_ms,
                "pre_post": perf.pre_ms + perf.post_ms,
            },
            intervals={k: [lo, hi] for k, (lo, hi) in perf.intervals.bounds.items()} if perf.intervals else {},
            layers=self.layer_comparison(point, options, estimator, hw),
            kept_channels=self.compression.variant(options).digest,
        )
        return Metrics(
            values, sources, constraints, details, arch.file_text(), accuracy.cached, accuracy.pruned_channels, accuracy.key
        )

    def layer_comparison(
        self, point: DesignPoint, options: CompressOptions, estimator: Estimator, hw: HardwareMetrics
    ) -> dict[str, list[Any]]:
        """Per layer, the unpruned model on this design's DPU (A) against this design (B): DPU time, GOPS, output
        channels and passes, and whether pruning shortened a layer (perf/compare.py; estimates)."""
        unpruned = replace(options, prune={}, abstain_ocp=0, finetune=None, rounds=1)
        base = self.estimator(unpruned) if unpruned.pruning_key != options.pruning_key else estimator
        base_perf = hw.perf if base is estimator else base.estimate(point.dpu, point.split, self.estimate_options(point))
        parallelism = (hw.spec.arch.ocp, hw.spec.arch.icp)
        return to_columns(compare_layers(base.graph, base_perf, parallelism, estimator.graph, hw.perf, parallelism))

    def estimate_options(self, point: DesignPoint) -> EstimateOptions:
        est = self.cfg.estimator
        return EstimateOptions(est.threads, est.pre_ms, est.post_ms, point.cpu_precision, est.runtime)

    def fit(self, point: DesignPoint) -> tuple[DpuSpec, ResourceEstimate, FitReport]:
        """The resolved configuration of `point`, its resources (source: model) and whether they fit the device."""
        spec = resolve(point.dpu, self.db)
        resources = estimate_resources(spec)
        return spec, resources, check_fit(resources.total, self.board.device, self.cfg.constraints.ceilings)

    def hardware(
        self,
        point: DesignPoint,
        estimator: Estimator,
        same_placements: dict[tuple[Any, ...], PerfEstimate] | None = None,
        fitted: tuple[DpuSpec, ResourceEstimate, FitReport] | None = None,
    ) -> HardwareMetrics:
        """The metrics of `point` that depend on its DPU configuration (all estimates, source: model): resources,
        fit, latency and FPS. With the model side unchanged, the accuracy metrics are those of any design point
        whose layers are placed alike. `same_placements`: latency estimates of design points that place the
        layers as this one does, by what else the estimate reads (the DPU geometry and architecture). `fitted`:
        what `fit` gives for this point, when known."""
        spec, resources, fit = fitted or self.fit(point)
        options = self.estimate_options(point)
        if same_placements is None:
            perf = estimator.estimate(point.dpu, point.split, options)
        else:
            key = (geometry(spec, self.board, estimator.params), point.dpu.arch, point.split, options)
            if key not in same_placements:
                same_placements[key] = estimator.estimate(point.dpu, point.split, options)
            perf = same_placements[key]
        values: dict[str, float] = {
            "fps_single": perf.fps_single,
            "fps_multi": perf.fps_multi,
            "latency_ms": perf.latency_ms,
            "dpu_ms": perf.dpu_ms,
            "cpu_ms": perf.cpu_ms,
            "dpu_utilization": perf.dpu_utilization,
            "dpu_subgraphs": float(perf.dpu_subgraphs),
            "peak_gops": peak_gops(spec),
            **{kind: resources.total.get(kind) for kind in ("lut", "ff", "bram36", "uram", "dsp")},
            **{f"headroom_{kind}": h for kind, h in fit.headroom.items() if h == h and abs(h) != float("inf")},
        }
        return HardwareMetrics(values, spec, fit, perf)

    def constraints(self, values: Mapping[str, float], hw: HardwareMetrics) -> dict[str, float]:
        """The study's constraints on a design point with these metrics (<= 0 feasible)."""
        cfg = self.cfg
        constraints: dict[str, float] = {}
        if cfg.constraints.fit:
            constraints["resources"] = hw.fit.constraint_value()
        if cfg.estimator.runtime == "pynq":  # DPU-PYNQ runs exactly one DPU subgraph (perf/estimate.py RUNTIMES)
            constraints["runtime_subgraphs"] = float(abs(hw.perf.dpu_subgraphs - 1))
        for bound in cfg.constraints.bounds:
            value = values.get(bound.metric)
            if value is None:
                raise ExplorerError(
                    f"constraints: the bound on {bound.metric!r} names a metric this design point does not have "
                    f"(it has {', '.join(sorted(values))})"
                )
            scale = abs(bound.value) or 1.0
            constraints[f"{bound.kind}_{bound.metric}"] = (
                (bound.value - value) if bound.kind == "min" else (value - bound.value)
            ) / scale
        return constraints
