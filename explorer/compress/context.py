"""Prune, partition, quantize and evaluate a model; measured accuracy, cached by what it depends on.

Accuracy is always measured: the compressed model runs in onnxruntime on held data (source: measured on
this machine, never guessed). It depends on the model, the pruning, the split and CPU precision (through
which nodes are quantized), the data and the evaluator, and not on the DPU's size, so the cache key is
exactly those inputs: a study evaluates each distinct compressed model once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from explorer.compress import QUANTIZE_MODES, RECOVERY, SELECTIONS
from explorer.compress.cache import JsonCache
from explorer.compress.finetune import FinetuneHook, finetuned_weights
from explorer.compress.prune import ApozReport, apply_pruning, choose_channels, measure_apoz
from explorer.compress.quantize import QuantizedModel, _insert_qdq, quantize
from explorer.compress.reconstruct import apply_weights, reconstruct_weights
from explorer.compress.selection import reconstruction_ranks
from explorer.data.loaders import Dataset
from explorer.dpu.support import DPU, Placement, place_layers
from explorer.errors import ExplorerError
from explorer.evaluators.builtin import Evaluator, fidelity_metrics
from explorer.fileio import file_digest
from explorer.graph.layers import ModelGraph, analyze, timing_only
from explorer.graph.loader import SHAPE_FLAG, ModelError, graph_inputs, prepare_model, read_model
from explorer.graph.passes import hard_activations, normalize
from explorer.graph.prepare import graph_from_model
from explorer.hardware.config import DpuConfig, resolve
from explorer.recent import Recent
from explorer.runtime import fixed_batch, run_model

PRUNED_KEPT = 8  # pruned models (with their weights) a context keeps in memory
VARIANTS_KEPT = 1024  # pruned variants whose layer table (no weights) and kept channels a context keeps
CACHE_VERSION = 5  # 2: DPU arithmetic emulated; 3: keyed by effect (kept channels, node sets); 4: recovery;
# 5: percentile/MSE samples drawn per tensor (calibration shared between splits)
EVAL_BATCH = 32
# Operators a CPU int8 part quantizes (as onnxruntime's static quantizer does); the rest stay float.
CPU_INT8_KINDS = {
    "conv",
    "dwconv",
    "gconv",
    "deconv",
    "fc",
    "matmul",
    "add",
    "mul",
    "concat",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "global_maxpool",
    "relu",
    "relu6",
    "leakyrelu",
    "upsample",
    "reorg",
}


@dataclass(frozen=True)
class CompressOptions:
    prune: Mapping[str, float] = field(default_factory=dict)  # threshold per layer group; empty: no pruning
    prune_multiple: int = 4
    prune_groups: int = 4
    quantize: str = "dpu"  # none | dpu (the seeds' "Y+N") | all ("Y+Y")
    calibration: str = "minmax"
    split: int | None = None
    recovery: str = "reconstruct"  # what restores accuracy after pruning (RECOVERY)
    abstain_ocp: int = 0  # the DPU's OCP: leave a cluster whole when pruning would not change its passes (0: prune)
    finetune: FinetuneHook | None = None  # the user's fine-tuning after pruning and recovery (finetune.py)
    rounds: int = 1  # iterative pruning: prune, recover and measure the APoZ again, this many times (`schedule`)
    selection: str = "reconstruction"  # which channels a cluster loses (SELECTIONS; APoZ says how many)

    @property
    def cpu_precision(self) -> str:
        return "int8" if self.quantize == "all" else "fp32"

    @property
    def pruning_key(self) -> tuple[Any, ...]:
        """What the pruned model depends on, as a hashable value."""
        key = tuple(sorted(self.prune.items())), self.prune_multiple, self.prune_groups, self.recovery, self.abstain_ocp
        more = ((self.finetune,) if self.finetune else ()) + ((("rounds", self.rounds),) if self.rounds > 1 else ())
        return (*key, *more, self.selection)


def kept_lists(kept: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    """The channels each convolution keeps, as JSON-ready lists."""
    return {name: [int(i) for i in np.asarray(keep).ravel()] for name, keep in sorted(kept.items())}


def kept_digest(kept: Mapping[str, np.ndarray]) -> str:
    """The channels each convolution keeps, as one digest (what a study records of a pruned design point)."""
    return hashlib.sha256(json.dumps(kept_lists(kept), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Variant:
    """What a pruned model is without its weights: the batch-1 layer table (`timing_only`) and the channels kept."""

    graph: ModelGraph
    kept: dict[str, np.ndarray]
    digest: str  # kept_digest(kept), once: the accuracy key and each trial's record read it


@dataclass(frozen=True)
class CompressResult:
    metrics: dict[str, float]
    float_metrics: dict[str, float]
    fidelity: dict[str, float]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    pruned_channels: dict[str, int]
    key: str
    dpu_arithmetic: list[str] = field(default_factory=list)  # what of the DPU's integer arithmetic was emulated
    pruning_schedule: list[dict[str, Any]] = field(default_factory=list)  # iterative pruning: each round's thresholds
    cached: bool = False
    source: str = "measured: onnxruntime on this machine"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dpu_outputs(graph: ModelGraph, placements: tuple[Placement, ...]) -> set[str]:
    """The first outputs of the layers placed on the DPU (how the quantizer names nodes)."""
    return {graph.layers[i].outputs[0] for i, p in enumerate(placements) if p.device == DPU and graph.layers[i].outputs}


class CompressionContext:
    """One model with its evaluation and calibration data: pruning, quantization and evaluation."""

    def __init__(
        self,
        model_path: str | Path,
        data: Dataset,
        calibration: Dataset,
        evaluator: Evaluator,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        shape_option: str = SHAPE_FLAG,
        hard: bool = False,
    ) -> None:
        """`hard`: Sigmoid/SiLU become HardSigmoid/HardSwish (graph/passes.py `hard_activations`); the model is
        placed, timed and quantized converted, and its accuracy compared with the unconverted float model."""
        self.path = Path(model_path)
        raw = read_model(self.path)
        quantized = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in raw.graph.node)
        if quantized:
            raise ModelError(
                f"{self.path}: the model is already quantized ({quantized} QuantizeLinear/DequantizeLinear nodes); "
                "give the float model: the explorer quantizes it as the DPU does (`explore estimate` takes a "
                "quantized model, for placement and timing)"
            )
        self.raw = raw
        self.digest = file_digest(self.path)
        self.data, self.calibration, self.evaluator = data, calibration, evaluator
        self.cache = JsonCache(cache_dir, use_cache)
        # batch 1: placements and latency
        self.hard = hard
        self.graph = graph_from_model(raw, input_shapes, source=str(self.path), option=shape_option, hard=hard)
        inputs = graph_inputs(raw)
        batch = None if raw.graph.input and fixed_batch(raw) else EVAL_BATCH
        shapes = {i.name: [batch or 1, *self.graph.shapes[i.name][1:]] for i in inputs}
        prepared = prepare_model(raw, shapes, source=str(self.path))
        self.eval_model = normalize(hard_activations(prepared) if hard else prepared)  # batch B: evaluation
        self.reference_model = normalize(prepared) if hard else self.eval_model  # the float model as given
        self._apoz: dict[int, ApozReport] = {}
        self._ranks: dict[tuple[str, ...], np.ndarray] | None = None
        self._float_outputs: dict[str, np.ndarray] | None = None
        self._float_metrics: dict[str, float] | None = None
        self._fixes: dict[tuple[Any, ...], dict[tuple[str, frozenset[str]], int]] = {}  # by pruned model, method
        # the pruned models most recently used (a study's later trials rebuild an older one from the disk cache)
        self._pruned: Recent[tuple[Any, ...], tuple[onnx.ModelProto, ModelGraph, dict[str, np.ndarray]]] = Recent(PRUNED_KEPT)
        # ... and, for many more, what placement, timing and the accuracy key read (no weights: a study revisiting
        # a variant whose accuracy it knows prunes nothing again)
        self._variants: Recent[tuple[Any, ...], Variant] = Recent(VARIANTS_KEPT)
        self._memory: dict[str, CompressResult] = {}  # this process's results, so a study reads each once
        self._schedules: dict[tuple[Any, ...], tuple[dict[str, np.ndarray], list[dict[str, Any]]]] = {}  # rounds > 1

    # -- pruning -------------------------------------------------------------------------------------------
    def apoz(self, groups: int = 4) -> ApozReport:
        """APoZ per prunable cluster in `groups` layer groups, measured once (memory, then the disk cache)."""
        if groups not in self._apoz:
            key = f"{self.digest}-{self.calibration.digest}-{groups}"
            cached = self.cache.read("apoz", key)
            if cached is not None:
                report = ApozReport.from_dict(cached)
            else:
                report = measure_apoz(self.graph.model, self.calibration, groups)  # batch 1: bounded memory
                self.cache.write("apoz", key, report.to_dict())
            self._apoz[groups] = report
        return self._apoz[groups]

    def ranks(self) -> dict[tuple[str, ...], np.ndarray]:
        """Per prunable cluster, its channels most needed first by the consumers' refit (selection.py), computed
        once per model and calibration data (memory, then the disk cache)."""
        if self._ranks is None:
            key = f"{self.digest}-{self.calibration.digest}"
            cached = self.cache.read("selection", key)
            if cached is not None:
                self._ranks = {tuple(c["sources"]): np.array(c["rank"], dtype=np.int64) for c in cached["clusters"]}
            else:
                self._ranks = reconstruction_ranks(self.graph.model, self.calibration, self.apoz())
                clusters = [{"sources": list(k), "rank": [int(i) for i in v]} for k, v in self._ranks.items()]
                self.cache.write("selection", key, {"clusters": clusters})
        return self._ranks

    def pruned(self, options: CompressOptions) -> tuple[onnx.ModelProto, ModelGraph, dict[str, np.ndarray]]:
        """(evaluation model, batch-1 graph, kept channels) after pruning with `options`."""
        return self._pruned.get_or_make(options.pruning_key, lambda: self._prune(options))

    def variant(self, options: CompressOptions) -> Variant:
        """The pruned variant of `options` without its weights: its layer table (placement, timing) and kept channels."""

        def make() -> Variant:
            _, graph, kept = self.pruned(options)
            return Variant(graph if graph is self.graph else timing_only(graph), kept, kept_digest(kept))

        return self._variants.get_or_make(options.pruning_key, make)

    def _prune(self, options: CompressOptions) -> tuple[onnx.ModelProto, ModelGraph, dict[str, np.ndarray]]:
        if not options.prune:
            return self.eval_model, self.graph, {}
        kept = self.schedule(options)[0]
        if not kept:
            return self.eval_model, self.graph, {}
        model = apply_pruning(self.eval_model, kept)
        small = apply_pruning(self.graph.model, kept)
        if options.recovery == "reconstruct":
            weights = self.reconstruction(model, kept)
            model, small = apply_weights(model, weights), apply_weights(small, weights)
        if options.finetune is not None:
            weights = self.finetuning(model, kept, options)
            model, small = apply_weights(model, weights), apply_weights(small, weights)
        return model, analyze(normalize(small)), kept

    def schedule(self, options: CompressOptions) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        """(channels kept, in the unpruned model's numbering; the rounds that chose them). One round: the APoZ of
        the unpruned model against the thresholds. `rounds` k > 1 (seed 002 prunes in six iterations): round r
        uses the thresholds t + (1 - t)(k - r)/k, from mild to the given t, on the APoZ measured again on the
        model the rounds before pruned and recovered (`recovery`; no fine-tuning between rounds)."""
        if options.pruning_key in self._schedules:
            return self._schedules[options.pruning_key]
        report = self.apoz(options.prune_groups)
        ranks = self.ranks() if options.selection == "reconstruction" else None
        sizes = {source: c.size for c in report.clusters for source in c.sources}
        kept: dict[str, np.ndarray] = {}
        rounds: list[dict[str, Any]] = []
        k = max(1, options.rounds)
        for r in range(1, k + 1):
            thresholds = {g: t + (1 - t) * (k - r) / k for g, t in options.prune.items()}
            if r > 1 and kept:  # the APoZ of what the rounds so far left (recovered as the final model is)
                small = apply_pruning(self.graph.model, kept)
                if options.recovery == "reconstruct":
                    small = apply_weights(small, self.reconstruction(apply_pruning(self.eval_model, kept), kept))
                report = measure_apoz(small, self.calibration, options.prune_groups)
                ranks = reconstruction_ranks(small, self.calibration, report) if ranks is not None else None
            chosen = choose_channels(report, thresholds, options.prune_multiple, options.abstain_ocp, ranks)
            for source, keep in chosen.items():
                kept[source] = kept.get(source, np.arange(sizes[source]))[keep]  # back to the unpruned numbering
            left = sum(len(kept[source]) if source in kept else size for source, size in sizes.items())
            pruned = {source: len(v) for source, v in sorted(kept.items())}
            rounds.append({"round": r, "thresholds": thresholds, "channels_left": left, "pruned": pruned})
        if k > 1:  # (one round is a lookup: nothing to keep)
            self._schedules[options.pruning_key] = kept, rounds
        return kept, rounds

    def reconstruction(self, pruned: onnx.ModelProto, kept: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The consumers' refitted weights for the channels `kept` (reconstruct.py), computed once per kept set
        and calibration data (memory, then the disk cache)."""
        return self._weights("reconstruct", kept, [], lambda: reconstruct_weights(self.eval_model, pruned, self.calibration))

    def finetuning(
        self, pruned: onnx.ModelProto, kept: Mapping[str, np.ndarray], options: CompressOptions
    ) -> dict[str, np.ndarray]:
        """The weights the fine-tuning hook gives the pruned (recovered) model, computed once per kept set, recovery,
        hook and data (the disk cache)."""
        hook = options.finetune
        assert hook is not None
        return self._weights(
            "finetune", kept, [options.recovery, hook.identity()], lambda: finetuned_weights(hook, pruned, self.calibration)
        )

    def _weights(
        self, kind: str, kept: Mapping[str, np.ndarray], more: list[Any], compute: Callable[[], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """New weight values of a pruned model, read from the disk cache by the model, the calibration data, the
        channels kept and `more`, else computed and stored."""
        identity = [self.digest, self.calibration.digest, self.hard, kept_lists(kept), *more]
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
        weights = self.cache.read_arrays(kind, key)
        if weights is None:
            weights = compute()
            self.cache.write_arrays(kind, key, weights)
        return weights

    # -- evaluation ----------------------------------------------------------------------------------------
    def float_metrics(self) -> dict[str, float]:
        """The evaluator's metrics of the float model (the same for every compressed model: computed once)."""
        if self._float_metrics is None:
            self._float_metrics = self.evaluator(self.float_outputs(), self.data.labels)
        return self._float_metrics

    def float_outputs(self) -> dict[str, np.ndarray]:
        if self._float_outputs is None:
            self._float_outputs = run_model(self.reference_model, self.data.inputs)
        return self._float_outputs

    def quantized_nodes(
        self, graph: ModelGraph, placements: tuple[Placement, ...], options: CompressOptions
    ) -> tuple[set[str], set[str]]:
        """(first outputs of the nodes to quantize, outputs consumed only by fused activations)."""
        if options.quantize == "none":
            return set(), set()
        chosen = dpu_outputs(graph, placements)
        if options.quantize == "all":
            chosen |= {layer.outputs[0] for layer in graph.layers if layer.kind in CPU_INT8_KINDS and layer.outputs}
        fused: set[str] = set()
        for i, p in enumerate(placements):
            if p.device == DPU and p.reason.startswith("fused"):
                fused.update(graph.layers[i].inputs)
        return chosen, fused

    def key(
        self,
        options: CompressOptions,
        quant_nodes: set[str],
        kept: str = "",
        dpu_nodes: set[str] | None = None,
        fused: set[str] | None = None,
    ) -> str:
        """The compressed model's identity, by effect: the channels each convolution keeps (not the thresholds
        that chose them), the nodes quantized, placed on the DPU and fused (not the split index or the
        quantize mode that gave them), the calibration and the data. Two design points that build the same
        model share one evaluation. `kept`: the variant's digest of its kept channels (`kept_digest`)."""
        payload = {
            "version": CACHE_VERSION,
            "model": self.digest,
            "kept_channels": kept or kept_digest({}),
            "calibration": options.calibration if quant_nodes else None,
            "quantized_nodes": sorted(quant_nodes),
            "dpu_nodes": sorted(dpu_nodes or ()) if quant_nodes else [],
            "fused": sorted(fused or ()) if quant_nodes else [],
            "data": self.data.digest,
            "calibration_data": self.calibration.digest,
            "evaluator": self.evaluator.name,
            "hard_activations": self.hard,
            "recovery": options.recovery if kept else None,
        }
        if kept and options.finetune is not None:  # (absent otherwise: the keys of earlier studies stay valid)
            payload["finetune"] = options.finetune.identity()
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    def measure_accuracy(
        self, options: CompressOptions, config: DpuConfig | None = None, placements: tuple[Placement, ...] | None = None
    ) -> CompressResult:
        """Measured accuracy of the model compressed with `options` (placements for `config`, or given)."""
        if options.quantize not in QUANTIZE_MODES:
            raise ExplorerError(f"quantize mode {options.quantize!r}: choose one of {', '.join(QUANTIZE_MODES)}")
        if options.recovery not in RECOVERY:
            raise ExplorerError(f"recovery {options.recovery!r}: choose one of {', '.join(RECOVERY)}")
        if options.selection not in SELECTIONS:
            raise ExplorerError(f"selection {options.selection!r}: choose one of {', '.join(SELECTIONS)}")
        graph, kept = (variant := self.variant(options)).graph, variant.kept
        if options.split is not None and not 0 <= options.split <= len(graph.layers):
            raise ExplorerError(f"split {options.split} outside 0..{len(graph.layers)}")
        if placements is None:
            placements = tuple(place_layers(graph, resolve(config or DpuConfig()), options.split))
        quant_nodes, fused = self.quantized_nodes(graph, placements, options)
        dpu_nodes = dpu_outputs(graph, placements)
        key = self.key(options, quant_nodes, variant.digest, dpu_nodes, fused)
        if key in self._memory:
            return self._memory[key]
        cached = self.cache.read("accuracy", key)
        if cached is not None:
            self._memory[key] = CompressResult(**{**cached, "cached": True})
            return self._memory[key]
        eval_model, full_graph, _ = self.pruned(options)
        model, arithmetic = eval_model, []
        if quant_nodes:
            q = self._quantize(eval_model, full_graph, options, quant_nodes, fused, dpu_nodes)
            model, arithmetic = q.model, list(q.dpu_arithmetic)
        outputs = run_model(model, self.data.inputs)
        reference = self.float_outputs()
        result = CompressResult(
            metrics=self.evaluator(outputs, self.data.labels),
            float_metrics=self.float_metrics(),
            fidelity=fidelity_metrics(outputs, reference),
            params_before=sum(layer.weight_count for layer in self.graph.layers),
            params_after=sum(layer.weight_count for layer in graph.layers),
            macs_before=self.graph.total_macs,
            macs_after=graph.total_macs,
            pruned_channels={name: int(self._width(name) - len(keep)) for name, keep in kept.items()},
            key=key,
            dpu_arithmetic=arithmetic,
            pruning_schedule=self.schedule(options)[1] if options.rounds > 1 and options.prune else [],
        )
        self.cache.write("accuracy", key, {k: v for k, v in result.to_dict().items() if k != "cached"})
        self._memory[key] = CompressResult(**{**result.to_dict(), "cached": True})
        return result

    def export(self, options: CompressOptions, config: DpuConfig | None = None) -> onnx.ModelProto:
        """The compressed model at batch 1 (pruned, with the QDQ pairs of the chosen quantization)."""
        eval_model, graph, _ = self.pruned(options)
        placements = tuple(place_layers(graph, resolve(config or DpuConfig()), options.split))
        quant_nodes, fused = self.quantized_nodes(graph, placements, options)
        if not quant_nodes:
            return graph.model
        q = self._quantize(eval_model, graph, options, quant_nodes, fused, dpu_outputs(graph, placements))
        inputs = {i.name for i in graph.model.graph.input}
        return _insert_qdq(graph.model, q.activation_fix, q.weight_fix, inputs, {o.name for o in graph.model.graph.output})

    def _quantize(
        self,
        eval_model: onnx.ModelProto,
        graph: ModelGraph,
        options: CompressOptions,
        quant_nodes: set[str],
        fused: set[str],
        dpu_nodes: set[str],
    ) -> QuantizedModel:
        """The evaluation model quantized, calibrated on the batch-1 graph, its DPU part computing as the DPU does.
        Fix positions calibrated for one split serve the others of the same pruned model (`quantize`'s `known`)."""
        return quantize(
            eval_model,
            quant_nodes,
            self.calibration,
            options.calibration,
            fused,
            calibration_model=graph.model,
            dpu_nodes=dpu_nodes,
            known=self._fixes.setdefault((options.pruning_key, options.calibration), {}),
        )

    def _width(self, conv: str) -> int:
        for layer in self.graph.layers:
            if layer.name == conv or (layer.outputs and layer.outputs[0] == conv):
                return layer.out_channels
        return 0
