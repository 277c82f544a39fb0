from __future__ import annotations

import numpy as np
import pytest

from explorer.data.pose_synth import make_pose_dataset
from explorer.errors import ExplorerError
from explorer.evaluators.builtin import Evaluator, fidelity_metrics, load_evaluator
from explorer.evaluators.pose import gaussian_heatmaps, pose_metrics


def test_perfect_pose_predictions() -> None:
    _, keypoints = make_pose_dataset(20, 9)
    heat = gaussian_heatmaps(keypoints, 24)
    metrics = pose_metrics(keypoints, keypoints, heat)
    assert metrics == {"euclidean_error": 0.0, "pck": 1.0, "jsd": pytest.approx(0.0, abs=1e-9)}


def test_pose_metrics_degrade_with_error() -> None:
    _, keypoints = make_pose_dataset(50, 9)
    noisy = keypoints + np.random.default_rng(0).normal(0, 0.1, keypoints.shape)
    metrics = pose_metrics(noisy, keypoints, gaussian_heatmaps(noisy.astype(np.float32), 24))
    assert 0.1 < metrics["euclidean_error"] < 0.15  # mean of a 2-D normal's norm: 0.1 * sqrt(pi/2)
    assert 0.0 < metrics["pck"] < 1.0 and metrics["jsd"] > 0.1


def test_classification_top1_top5() -> None:
    evaluator = load_evaluator("classification")
    logits = np.array([[0.1, 0.9, 0, 0, 0, 0, 0], [0.9, 0.1, 0, 0, 0, 0, 0], [-1, 0, 0, 0.1, 0.2, 0.3, 0.4]])
    metrics = evaluator({"logits": logits}, {"labels": np.array([1, 1, 0])})
    assert metrics["top1"] == pytest.approx(1 / 3) and metrics["top5"] == pytest.approx(2 / 3)


def test_fidelity_sqnr() -> None:
    ref = {"coords": np.ones((4, 16, 2))}
    assert fidelity_metrics(ref, ref)["sqnr_db"] == float("inf")
    noisy = {"coords": ref["coords"] + 0.01}
    assert fidelity_metrics(noisy, ref)["sqnr_db"] == pytest.approx(40.0)
    assert fidelity_metrics(noisy, ref)["keypoint_drift"] == pytest.approx(0.01 * np.sqrt(2))


def test_user_evaluator_and_errors() -> None:
    evaluator = load_evaluator("tests.evaluators.user_metric:evaluate")
    assert evaluator.directions == {"mean_output": "maximize"}
    assert evaluator({"y": np.ones((2, 3))}, {}) == {"mean_output": 1.0}
    with pytest.raises(ExplorerError, match="cannot import"):
        load_evaluator("no_such_module_xyz:f")
    with pytest.raises(ExplorerError, match="use one of pose, classification"):
        load_evaluator("posee")
    with pytest.raises(ExplorerError, match="needs label array"):
        load_evaluator("pose")({"coords": np.zeros((1, 16, 2))}, {})


def test_an_evaluator_that_does_not_fit_the_outputs_says_so() -> None:
    """A detector's (N, 20, 80) output named `output` is no classifier's (N, classes): a message, no traceback."""
    classify = load_evaluator("classification")
    labels = {"labels": np.zeros(2, dtype=np.int64)}
    with pytest.raises(ExplorerError, match=r"no \(N, classes\) output among the model's outputs \(output \[2, 20, 80\]\)"):
        classify({"output": np.zeros((2, 20, 80), dtype=np.float32)}, labels)
    broken = Evaluator("broken", lambda outputs, labels: {"x": 1.0 / 0}, {"x": "maximize"})
    with pytest.raises(
        ExplorerError, match=r"evaluator 'broken' failed on the model's outputs \(y \[2, 3\]\): ZeroDivisionError"
    ):
        broken({"y": np.zeros((2, 3))}, {})
