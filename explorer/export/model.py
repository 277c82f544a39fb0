"""The model side of an export: the (pruned) model cut at the design point's split, and a study trial's origin.

`model_parts` returns the layers before the cut (for the Vitis AI quantizer and compiler: it may still
leave nodes it cannot run to the CPU) and the layers after it (for onnxruntime on the Arm cores, in fp32
and, when the design point runs the CPU side in int8, a power-of-two QDQ copy calibrated on the DPU
part's outputs). `select_trial` picks a finished trial of a study by number or by the best value of one
objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.compress.context import CPU_INT8_KINDS, CompressionContext, CompressOptions
from explorer.compress.quantize import quantize
from explorer.data.loaders import Dataset
from explorer.errors import ExplorerError
from explorer.export.writer import ModelParts
from explorer.graph.partition import Subgraph, cut_points, subgraph_model
from explorer.runtime import run_model
from explorer.study.config import StudyConfig

CALIBRATION_SAMPLES = 32


def model_parts(compression: CompressionContext, options: CompressOptions, net_name: str) -> ModelParts:
    _, graph, _ = compression.pruned(options)
    n = len(graph.layers)
    split = options.split if options.split is not None and options.split < n else None
    inputs = {name: list(graph.shapes[name]) for name in graph.graph_inputs}
    calib = compression.calibration.head(CALIBRATION_SAMPLES)
    calibration = {name: np.asarray(calib.inputs[name], dtype=np.float32) for name in inputs}
    if split is None:
        head = subgraph_model(graph, Subgraph(0, "DPU", tuple(range(n)), graph.graph_inputs, graph.graph_outputs))
        return ModelParts(
            net_name, head, None, None, inputs, list(graph.graph_outputs), list(graph.graph_outputs), None,
            options.cpu_precision, calibration,
        )  # fmt: skip
    cut = cut_points(graph)[split]
    made_before = {t for layer in graph.layers[:split] for t in layer.outputs}
    head_outputs = tuple(t for t in cut.tensors if t in made_before)
    if not head_outputs:
        raise ExplorerError(f"split {split} leaves the DPU part empty; choose a split after the first layer")
    head = subgraph_model(graph, Subgraph(0, "DPU", tuple(range(split)), graph.graph_inputs, head_outputs))
    tail_outputs = tuple(t for t in graph.graph_outputs if t not in made_before)
    tail = subgraph_model(graph, Subgraph(1, "CPU", tuple(range(split, n)), cut.tensors, tail_outputs))
    tail_int8 = None
    if options.cpu_precision == "int8":
        produced = run_model(head, calibration)
        feeds = {t: (calibration[t] if t in calibration else produced[t]) for t in cut.tensors}
        nodes = {layer.outputs[0] for layer in graph.layers[split:] if layer.kind in CPU_INT8_KINDS and layer.outputs}
        tail_int8 = quantize(tail, nodes, Dataset(feeds, {}, "dpu part outputs"), options.calibration).model
    return ModelParts(
        net_name, head, tail, tail_int8, inputs, list(cut.tensors), list(graph.graph_outputs), split,
        options.cpu_precision, calibration,
    )  # fmt: skip


@dataclass(frozen=True)
class TrialChoice:
    number: int
    design_point: dict[str, Any]
    metrics: dict[str, float]
    sources: dict[str, str]
    why: str


def select_trial(cfg: StudyConfig, trial: int | None = None, best: str | None = None) -> TrialChoice:
    """A finished trial by number, or the feasible finished trial with the best value of `best`."""
    import optuna

    from explorer.study.runner import load_existing

    study = load_existing(cfg)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and "design_point" in t.user_attrs]
    if trial is not None:
        found = [t for t in trials if t.number == trial]
        if not found:
            raise ExplorerError(f"study {cfg.study_name!r} has no trial {trial} (trials 0..{len(trials) - 1})")
        chosen = found[0]
        if chosen not in complete:
            reason = chosen.user_attrs.get("fail_reason", chosen.state.name.lower())
            raise ExplorerError(f"trial {trial} did not finish ({reason}); choose a finished trial")
        why = f"trial {trial}"
    else:
        if best is None:
            raise ExplorerError("give --trial N or --best OBJECTIVE")
        directions = {o.metric: o.direction for o in cfg.objectives}
        if best not in directions:
            raise ExplorerError(f"--best {best}: not an objective of this study; choose one of {', '.join(directions)}")
        feasible = [t for t in complete if all(v <= 0 for v in (t.constraints or {}).values())]
        if not feasible:
            raise ExplorerError(
                f"study {cfg.study_name!r} has {len(complete)} finished trials and none is feasible (resources over the "
                "ceilings, or a bound missed); run more trials, or export one anyway with --trial N"
            )
        sign = 1.0 if directions[best] == "minimize" else -1.0

        def key(t: optuna.trial.FrozenTrial) -> tuple[float, int]:
            value = t.user_attrs.get("metrics", {}).get(best)
            return (sign * float(value) if value is not None and math.isfinite(value) else math.inf, t.number)

        chosen = min(feasible, key=key)
        why = f"best {best} ({directions[best]}) among {len(feasible)} feasible trials: trial {chosen.number}"
    metrics = {k: float(v) for k, v in chosen.user_attrs.get("metrics", {}).items() if v is not None}
    return TrialChoice(
        chosen.number, dict(chosen.user_attrs["design_point"]), metrics, dict(chosen.user_attrs.get("sources", {})), why
    )
