"""The evaluator interface and the built-in evaluators.

An evaluator is a callable `evaluate(outputs, labels) -> dict[str, float]`:
  outputs: the model's outputs over the whole data set, {output name: array with the samples on axis 0}
  labels:  the data set's label arrays, {name: array with the samples on axis 0} (e.g. "keypoints", "labels")
It returns named metrics. Built-ins: `pose`, `classification`. A user's own evaluator is given as
`module:function` (for example `mypkg.metrics:evaluate`) or `path/to/file.py:function`; its metrics'
directions can be declared with a `DIRECTIONS = {"metric": "minimize" | "maximize"}` attribute on the function or module.
Fidelity to the float model needs no labels: see `fidelity_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.errors import ExplorerError
from explorer.evaluators.pose import pose_metrics
from explorer.hooks import load_function

EvaluateFn = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], dict[str, float]]


@dataclass(frozen=True)
class Evaluator:
    name: str
    function: EvaluateFn
    directions: Mapping[str, str]  # metric -> "minimize" | "maximize"
    needs: tuple[str, ...] = ()  # label arrays it reads

    def __call__(self, outputs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> dict[str, float]:
        missing = [k for k in self.needs if k not in labels]
        if missing:
            raise ExplorerError(
                f"evaluator {self.name!r} needs label array(s) {', '.join(missing)} in the data; found "
                f"{', '.join(labels) or 'none'}"
            )
        try:
            return self.function(outputs, labels)
        except ExplorerError:
            raise
        except Exception as exc:  # the evaluator's own failure: say on what
            shapes = "; ".join(f"{name} {list(np.shape(value))}" for name, value in outputs.items())
            raise ExplorerError(
                f"evaluator {self.name!r} failed on the model's outputs ({shapes}): {type(exc).__name__}: {exc}"
            ) from exc


def _pick(outputs: Mapping[str, np.ndarray], names: tuple[str, ...], ndim: int | None = None) -> np.ndarray | None:
    for name in names:
        if name in outputs and (ndim is None or outputs[name].ndim == ndim):
            return outputs[name]
    if ndim is not None:
        for value in outputs.values():
            if value.ndim == ndim:
                return value
    return None


def evaluate_pose(outputs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> dict[str, float]:
    keypoints = labels["keypoints"]
    coords = _pick(outputs, ("coords", "keypoints"), ndim=3)
    if coords is None:
        raise ExplorerError(f"pose evaluator: no coordinate output (N, J, 2) among {', '.join(outputs)}")
    heatmaps = _pick(outputs, ("heatmaps",), ndim=4)
    return pose_metrics(coords, keypoints, heatmaps)


def evaluate_classification(outputs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> dict[str, float]:
    logits = _pick(outputs, ("logits", "output", "probs"), ndim=2)
    if logits is None:
        shapes = "; ".join(f"{name} {list(value.shape)}" for name, value in outputs.items())
        raise ExplorerError(f"classification evaluator: no (N, classes) output among the model's outputs ({shapes})")
    truth = labels["labels"].reshape(-1).astype(np.int64)
    order = np.argsort(-logits, axis=1)
    top5 = order[:, : min(5, logits.shape[1])]
    return {"top1": float((order[:, 0] == truth).mean()), "top5": float((top5 == truth[:, None]).any(axis=1).mean())}


def fidelity_metrics(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Label-free agreement with the float model: output SQNR (dB) and, for pose outputs, keypoint drift."""
    signal = noise = 0.0
    for name, ref in reference.items():
        diff = outputs[name].astype(np.float64) - ref.astype(np.float64)
        signal += float(np.sum(ref.astype(np.float64) ** 2))
        noise += float(np.sum(diff**2))
    out = {"sqnr_db": float(10 * np.log10(signal / noise)) if noise > 0 else float("inf")}
    coords_ref = _pick(reference, ("coords", "keypoints"), ndim=3)
    coords_out = _pick(outputs, ("coords", "keypoints"), ndim=3)
    if coords_ref is not None and coords_out is not None:
        out["keypoint_drift"] = float(np.linalg.norm(coords_out - coords_ref, axis=-1).mean())
    return out


BUILTIN = {
    "pose": Evaluator(
        "pose", evaluate_pose, {"euclidean_error": "minimize", "jsd": "minimize", "pck": "maximize"}, ("keypoints",)
    ),
    "classification": Evaluator("classification", evaluate_classification, {"top1": "maximize", "top5": "maximize"}, ("labels",)),
}
FIDELITY_DIRECTIONS = {"sqnr_db": "maximize", "keypoint_drift": "minimize"}


def load_evaluator(spec: str, base_dir: Path | None = None) -> Evaluator:
    """A built-in name (pose, classification), `module:function`, or `path/to/file.py:function` (a relative
    path is relative to `base_dir`, the study file's folder)."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if ":" not in spec:
        raise ExplorerError(f"evaluator {spec!r}: use one of {', '.join(BUILTIN)}, module:function or file.py:function")
    function, module = load_function(spec, base_dir, "evaluator")
    directions = getattr(function, "DIRECTIONS", None) or getattr(module, "DIRECTIONS", None) or {}
    return Evaluator(spec, function, dict(directions))
