"""Measured accuracy through the pipeline, and its on-disk cache keyed by what accuracy depends on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from explorer.compress.context import CompressionContext, CompressOptions
from explorer.data.loaders import Dataset
from explorer.evaluators.builtin import Evaluator, load_evaluator
from explorer.hardware.config import DpuConfig
from tests.models import tiny_resnet


def output_mean(outputs: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    return {"agreement": float(np.mean(np.argmax(next(iter(outputs.values())), axis=1) == labels["labels"]))}


@pytest.fixture()
def ctx(tmp_path: Path) -> CompressionContext:
    path = tmp_path / "m.onnx"
    model = tiny_resnet(16)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"  # a dynamic batch, as exporters write
    onnx.save(model, path)
    x = np.random.default_rng(0).standard_normal((40, 3, 16, 16)).astype(np.float32)
    labels = np.argmax(__import__("onnxruntime").InferenceSession(str(path)).run(None, {"input": x})[0], axis=1)
    data = Dataset({"input": x}, {"labels": labels}, "rand", "d1")
    return CompressionContext(
        path, data, data.head(20), Evaluator("agree", output_mean, {"agreement": "maximize"}), cache_dir=tmp_path / "cache"
    )


def test_float_and_quantized_accuracy_are_measured(ctx: CompressionContext) -> None:
    none = ctx.measure_accuracy(CompressOptions(quantize="none"))
    assert none.metrics == none.float_metrics == {"agreement": 1.0} and none.fidelity["sqnr_db"] == float("inf")
    dpu = ctx.measure_accuracy(CompressOptions(quantize="dpu"))
    assert 15 < dpu.fidelity["sqnr_db"] < 80 and dpu.metrics["agreement"] >= 0.7
    assert dpu.source.startswith("measured")


def test_cache_hit_and_key(ctx: CompressionContext, tmp_path: Path) -> None:
    first = ctx.measure_accuracy(CompressOptions(quantize="dpu"))
    again = ctx.measure_accuracy(CompressOptions(quantize="dpu"))
    assert not first.cached and again.cached and again.metrics == first.metrics and again.key == first.key
    # a DPU size does not change accuracy: same key; a split does
    assert ctx.measure_accuracy(CompressOptions(quantize="dpu"), DpuConfig(arch="B512")).key == first.key
    assert ctx.measure_accuracy(CompressOptions(quantize="dpu", split=3)).key != first.key
    assert len(list((tmp_path / "cache" / "accuracy").glob("*.json"))) == 2
    # another process reads the disk cache; a damaged entry there is recomputed, not trusted
    fresh = CompressionContext(ctx.path, ctx.data, ctx.calibration, ctx.evaluator, cache_dir=tmp_path / "cache")
    assert fresh.measure_accuracy(CompressOptions(quantize="dpu")).cached
    for f in (tmp_path / "cache" / "accuracy").glob("*.json"):
        f.write_text("{broken")
    fresh = CompressionContext(ctx.path, ctx.data, ctx.calibration, ctx.evaluator, cache_dir=tmp_path / "cache")
    assert not fresh.measure_accuracy(CompressOptions(quantize="dpu")).cached


def test_design_points_that_build_the_same_model_share_one_evaluation(ctx: CompressionContext) -> None:
    """The key is the compressed model's identity: thresholds that keep the same channels, or split indices
    past the last layer the DPU takes, give the same model and are evaluated once."""
    layers = len(ctx.graph.layers)
    whole = ctx.measure_accuracy(CompressOptions(quantize="dpu"))
    assert ctx.measure_accuracy(CompressOptions(quantize="dpu", split=layers)).key == whole.key  # the split cuts nothing
    loose = ctx.measure_accuracy(CompressOptions(prune={"g0": 0.999, "g1": 0.999}, quantize="dpu"))
    looser = ctx.measure_accuracy(CompressOptions(prune={"g0": 0.9999, "g1": 0.9999}, quantize="dpu"))
    assert not loose.pruned_channels and not looser.pruned_channels  # no channel is that often zero here ...
    assert loose.key == looser.key == whole.key  # ... so both are the unpruned model
    assert ctx.measure_accuracy(CompressOptions(quantize="none")).key != whole.key
    assert ctx.measure_accuracy(CompressOptions(quantize="none", calibration="mse")).key == (
        ctx.measure_accuracy(CompressOptions(quantize="none")).key
    )  # nothing quantized: the calibration method changes nothing


def test_pruning_reduces_macs(ctx: CompressionContext) -> None:
    result = ctx.measure_accuracy(
        CompressOptions(prune={"g0": 0.3, "g1": 0.3}, prune_multiple=1, prune_groups=2, quantize="none")
    )
    assert result.macs_after < result.macs_before and result.params_after < result.params_before
    assert sum(result.pruned_channels.values()) > 0


def test_export_is_batch_one_qdq(ctx: CompressionContext) -> None:
    model = ctx.export(CompressOptions(quantize="dpu"))
    onnx.checker.check_model(model)
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_an_already_quantized_model_is_refused(ctx: CompressionContext, tmp_path: Path) -> None:
    """Quantizing a QDQ model again would measure a doubly quantized model: the message asks for the float one."""
    from explorer.errors import ExplorerError

    onnx.save(ctx.export(CompressOptions(quantize="dpu")), tmp_path / "int8.onnx")
    with pytest.raises(ExplorerError, match=r"int8.onnx: the model is already quantized \(\d+ QuantizeLinear"):
        CompressionContext(tmp_path / "int8.onnx", ctx.data, ctx.calibration, ctx.evaluator, cache_dir=tmp_path / "c2")


def test_unknown_evaluator_name() -> None:
    from explorer.errors import ExplorerError

    with pytest.raises(ExplorerError):
        load_evaluator("nope")


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_splits_share_calibration_with_the_same_result(ctx: CompressionContext, tmp_path: Path, method: str) -> None:
    """Fix positions calibrated for one split are reused by the next; the result equals a fresh calibration."""
    opts = [CompressOptions(quantize="all", calibration=method, split=s) for s in (None, 3, 5)]
    for o in opts:
        ctx.measure_accuracy(o)
    known = ctx._fixes[(opts[0].pruning_key, method)]
    count = len(known)
    assert count > 0
    later = CompressOptions(quantize="dpu", calibration=method, split=4)
    shared = ctx.measure_accuracy(later)
    assert len(known) == count  # every tensor of split 4 was calibrated already, for splits 3 and 5
    fresh = CompressionContext(ctx.path, ctx.data, ctx.calibration, ctx.evaluator, use_cache=False)
    alone = fresh.measure_accuracy(later)
    assert shared.metrics == alone.metrics and shared.fidelity == alone.fidelity
    assert shared.key == alone.key
