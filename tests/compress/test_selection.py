"""Channel selection for the refit: the greedy removal costs are the least-squares residuals they stand for,
a channel the others can re-express goes first (whatever its APoZ), and the ranks are cached per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from explorer.compress.channels import build_channel_graph
from explorer.compress.prune import apply_pruning, choose_channels, measure_apoz
from explorer.compress.reconstruct import apply_weights, linear_layers, reconstruct_weights
from explorer.compress.selection import _fit, gram_matrices, reconstruction_ranks
from explorer.data.loaders import Dataset
from explorer.graph.prepare import graph_from_model
from explorer.graph.util import initializers
from explorer.runtime import run_model
from tests.compress.test_prune import coupled_model


def _data(n: int, seed: int, shape: tuple[int, ...] = (3, 16, 16)) -> Dataset:
    x = np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)
    return Dataset({"input": x}, {}, f"random-{seed}", f"r{seed}")


def _residual(w: np.ndarray, gram: np.ndarray, kept: np.ndarray) -> float:
    """What the least-squares refit of y = w x on the columns `kept` leaves: tr(w G w^T) - tr(w G_:K G_KK^-1 G_K: w^T)."""
    cross = gram[:, kept] @ np.linalg.solve(gram[np.ix_(kept, kept)], gram[kept, :])
    return float(np.trace(w @ gram @ w.T) - np.trace(w @ cross @ w.T))


def test_each_removal_cost_is_the_refits_residual() -> None:
    """On the coupled model's 3x3 consumer (nine columns a channel): the cost of removing a channel, alone and
    after another was removed (the downdate), equals the residual an explicit refit leaves, relative to energy."""
    model = graph_from_model(coupled_model()[0]).model
    calib = _data(24, 0)
    report = measure_apoz(model, calib, groups=1)
    cluster = next(c for c in report.clusters if len(c.sources) == 2)  # the two convolutions joined by Add
    graph = build_channel_graph(model)
    members = {s for s, space in graph.spaces.items() if space.source in cluster.sources}
    consumer = next(c for c in linear_layers(model) if c.kernel == (3, 3) and c.input.startswith("add"))
    gram = gram_matrices(model, [consumer], calib)[consumer.node]
    weights = initializers(model)
    fit = _fit(consumer, gram, weights, graph.lists[consumer.input], members)
    assert fit is not None and all(len(v) == 9 for v in fit.columns.values())
    w = weights[consumer.weight].reshape(weights[consumer.weight].shape[0], -1).astype(np.float64)
    assert consumer.bias is not None
    wb = np.hstack([w, weights[consumer.bias].astype(np.float64)[:, None]])
    gram = gram + 1e-6 * float(np.mean(np.diag(gram))) * np.eye(len(gram))  # the jitter the fit adds
    everything = np.arange(len(gram))
    energy = float(np.trace(wb @ gram @ wb.T))
    costs = fit.costs(list(range(cluster.size)))
    for j in range(cluster.size):
        without = np.setdiff1d(everything, fit.columns[j])
        assert costs[j] == pytest.approx(_residual(wb, gram, without) / energy, rel=1e-4, abs=1e-9)
    fit.remove(3)
    after = fit.costs([0, 5])
    for k, j in enumerate((0, 5)):
        both = np.setdiff1d(everything, np.concatenate([fit.columns[3], fit.columns[j]]))
        increase = _residual(wb, gram, both) - _residual(wb, gram, np.setdiff1d(everything, fit.columns[3]))
        assert after[k] == pytest.approx(increase / energy, rel=1e-4, abs=1e-9)


def _twins_model() -> onnx.ModelProto:
    """input (2 channels) -> 1x1 conv to 4 channels -> Relu -> 1x1 conv to 3. Channels 0 and 1 are twins (the
    same filter, always active); channel 3 is active about half the time, channel 2 rarely."""
    rng = np.random.default_rng(7)
    w1 = np.zeros((4, 2, 1, 1), np.float32)
    w1[0, :, 0, 0] = w1[1, :, 0, 0] = [0.5, 0.3]
    w1[2, :, 0, 0], w1[3, :, 0, 0] = [1.0, -0.8], [-0.6, 1.1]
    b1 = np.array([4.0, 4.0, -1.5, 0.0], np.float32)
    w2 = rng.standard_normal((3, 4, 1, 1)).astype(np.float32)
    b2 = rng.standard_normal(3).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["a"], name="conv_a", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["a"], ["r"], name="relu_a"),
        helper.make_node("Conv", ["r", "w2", "b2"], ["out"], name="conv_b", kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "twins",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_channel_the_others_re_express_goes_first_whatever_its_apoz() -> None:
    """APoZ would cut the rarely active channel 2; the refit can do without one twin at no loss at all, so the
    selection cuts a twin, and the reconstructed output on held-out data is the unpruned one."""
    model = graph_from_model(_twins_model()).model
    calib, held = _data(32, 1, (2, 8, 8)), _data(16, 2, (2, 8, 8))
    report = measure_apoz(model, calib, groups=1)
    (cluster,) = report.clusters
    assert int(np.argmax(cluster.apoz)) == 2 and cluster.apoz[0] == cluster.apoz[1] == 0.0
    ranks = reconstruction_ranks(model, calib, report)
    assert sorted(ranks[cluster.sources].tolist()) == [0, 1, 2, 3] and ranks[cluster.sources][-1] in (0, 1)
    threshold = {"g0": float(cluster.apoz[2])}  # APoZ says: one channel goes
    by_apoz = choose_channels(report, threshold, multiple=1)
    by_refit = choose_channels(report, threshold, multiple=1, ranks=ranks)
    assert by_apoz[cluster.sources[0]].tolist() == [0, 1, 3]
    assert len(by_refit[cluster.sources[0]]) == 3 and 2 in by_refit[cluster.sources[0]]

    def error(kept: dict[str, np.ndarray]) -> float:
        pruned = apply_pruning(model, kept)
        recovered = apply_weights(pruned, reconstruct_weights(model, pruned, calib))
        got, want = run_model(recovered, held.inputs)["out"], run_model(model, held.inputs)["out"]
        return float(np.linalg.norm(got - want) / np.linalg.norm(want))

    assert error(by_refit) < 1e-3 < error(by_apoz)


def test_the_context_ranks_once_and_reads_them_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer.compress import context as context_module
    from explorer.compress.context import CompressionContext, CompressOptions
    from explorer.data.loaders import load_data
    from explorer.errors import ExplorerError
    from explorer.evaluators.builtin import load_evaluator

    model = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
    data, calibration = load_data("pose-synth:4:3", ["input"]), load_data("pose-synth:8:2", ["input"])
    first = CompressionContext(model, data, calibration, load_evaluator("pose"), tmp_path)
    ranks = first.ranks()
    assert {c.sources for c in first.apoz().clusters} == set(ranks)
    for cluster in first.apoz().clusters:
        assert sorted(ranks[cluster.sources].tolist()) == list(range(cluster.size))

    def never(*_: object) -> None:
        raise AssertionError("ranked again instead of reading the cache")

    monkeypatch.setattr(context_module, "reconstruction_ranks", never)
    second = CompressionContext(model, data, calibration, load_evaluator("pose"), tmp_path)
    assert {k: v.tolist() for k, v in second.ranks().items()} == {k: v.tolist() for k, v in ranks.items()}
    options = CompressOptions(prune={"g2": 0.55}, quantize="none")
    assert options.pruning_key != CompressOptions(prune={"g2": 0.55}, quantize="none", selection="apoz").pruning_key
    with pytest.raises(ExplorerError, match="selection 'greedy': choose one of reconstruction, apoz"):
        second.measure_accuracy(CompressOptions(prune={"g2": 0.55}, quantize="none", selection="greedy"))


def test_the_selection_in_a_study_and_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from explorer.cli import main
    from explorer.hardware.config import DpuConfig
    from explorer.study.design_metrics import compress_options
    from explorer.study.search_space import DesignPoint
    from tests.study.test_runner import small_study

    cfg = small_study(tmp_path, "pruning: {selection: apoz}\n")
    assert cfg.pruning.selection == "apoz"
    (tmp_path / "default").mkdir()
    assert small_study(tmp_path / "default", "").pruning.selection == "reconstruction"
    point = DesignPoint(DpuConfig(), {"g2": 0.55}, 4, 4, None, "fp32")
    assert compress_options(point, cfg).selection == "apoz"
    model = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
    args = ["compress", str(model), "--data", "pose-synth:8:3", "--calib-data", "pose-synth:8:2", "--quantize", "none"]
    kept = {}
    for selection in ("apoz", "reconstruction"):
        options = ["--prune", "g2=0.55", "--prune-selection", selection, "--json", "--cache-dir", str(tmp_path / "c")]
        assert main([*args, *options]) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["options"]["selection"] == selection
        kept[selection] = payload["pruned_channels"]
    assert kept["apoz"] == kept["reconstruction"]  # APoZ says how many either way; which ones differ
    assert main([*args, "--prune", "g2=0.55", "--prune-selection", "apoz", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "APoZ chose how many and which (selection: apoz); the layers reading them refitted" in capsys.readouterr().out
