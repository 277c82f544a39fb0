"""Least-squares reconstruction after pruning: the consumers' refit brings their outputs back toward the
unpruned model's on data it was not fitted on, keeps the model valid, and is cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from explorer.compress.context import CompressionContext, CompressOptions
from explorer.compress.prune import apply_pruning, measure_apoz
from explorer.compress.reconstruct import BIAS_SUFFIX, apply_weights, consumers_of_pruned, patches, reconstruct_weights
from explorer.data.loaders import Dataset
from explorer.evaluators.builtin import load_evaluator
from explorer.graph.prepare import graph_from_model
from explorer.graph.util import initializers
from explorer.runtime import run_model
from reference.zoo import NetBuilder
from tests.compress.test_prune import coupled_model


def _data(n: int, seed: int, shape: tuple[int, ...] = (3, 16, 16)) -> Dataset:
    x = np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)
    return Dataset({"input": x}, {}, f"random-{seed}", f"r{seed}")


def _relative_error(model: onnx.ModelProto, reference: onnx.ModelProto, data: Dataset, tensor: str) -> float:
    got = run_model(model, data.inputs, extra_outputs=[tensor])[tensor]
    want = run_model(reference, data.inputs, extra_outputs=[tensor])[tensor]
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def test_patches_match_a_convolution() -> None:
    b = NetBuilder("one", (1, 4, 9, 9), seed=7)
    out = b.conv("input", 3, k=3, s=2, act=None)
    model = b.build([out])
    x = np.random.default_rng(1).standard_normal((1, 4, 9, 9)).astype(np.float32)
    y = run_model(model, {"input": x})[out][0]
    consumer = consumers_of_pruned(model, model)  # nothing was pruned: no consumer
    assert consumer == []
    from explorer.compress.reconstruct import Consumer

    node = model.graph.node[0]
    w = initializers(model)[node.input[1]]
    bias = initializers(model)[node.input[2]]
    conv = Consumer(out, "Conv", "input", node.input[1], node.input[2], (3, 3), (2, 2), (1, 1, 1, 1), (1, 1))
    rows, cols = np.array([0, 2, 4]), np.array([4, 0, 3])
    manual = patches(x[0], conv, rows, cols) @ w.reshape(3, -1).T + bias
    assert np.allclose(manual, y[:, rows, cols].T, atol=1e-5)


def _sources(model: onnx.ModelProto, data: Dataset) -> list[tuple[str, ...]]:
    return [c.sources for c in measure_apoz(model, data, groups=1).clusters]


def test_the_refit_brings_the_consumers_back_on_held_out_data(tmp_path: Path) -> None:
    model = graph_from_model(coupled_model()[0]).model
    fit, held = _data(48, 0), _data(32, 1)
    coupled = next(c for c in _sources(model, fit) if len(c) == 2)  # the two convolutions joined by Add
    kept = {name: np.array([0, 2, 3, 5, 7]) for name in coupled}
    consumer_out = next(n.output[0] for n in model.graph.node if n.op_type == "Conv" and n.input[0].startswith("add"))
    pruned = apply_pruning(model, kept)
    consumers = consumers_of_pruned(model, pruned)
    assert consumers and {c.op for c in consumers} == {"Conv"}
    weights = reconstruct_weights(model, pruned, fit)
    recovered = apply_weights(pruned, weights)
    onnx.checker.check_model(recovered)
    for c in consumers:
        assert weights[c.weight].shape == initializers(pruned)[c.weight].shape  # the shapes do not change
        assert (c.bias or c.node + BIAS_SUFFIX) in weights
    before = _relative_error(pruned, model, held, consumer_out)
    after = _relative_error(recovered, model, held, consumer_out)
    assert after < 0.7 * before, (before, after)
    # the final output too, on data the fit never saw
    final = model.graph.output[0].name
    assert _relative_error(recovered, model, held, final) < _relative_error(pruned, model, held, final)


def test_a_gemm_consumer_is_refitted() -> None:
    b = NetBuilder("fc", (1, 3, 8, 8), seed=3)
    x = b.conv("input", 8, k=3)
    out = b.fc(b.flatten(b.global_avgpool(x)), 4)
    model = graph_from_model(b.build([out])).model
    (conv,) = _sources(model, _data(8, 4, (3, 8, 8)))[0]
    pruned = apply_pruning(model, {conv: np.array([0, 1, 2, 3, 4])})
    assert [c.op for c in consumers_of_pruned(model, pruned)] == ["Gemm"]
    recovered = apply_weights(pruned, reconstruct_weights(model, pruned, _data(64, 2, (3, 8, 8))))
    held = _data(32, 3, (3, 8, 8))
    assert _relative_error(recovered, model, held, out) < _relative_error(pruned, model, held, out)


def test_the_context_recovers_by_default_caches_and_quantizes(tmp_path: Path) -> None:
    model_path = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
    from explorer.data.loaders import load_data

    data, calibration = load_data("pose-synth:24:3", ["input"]), load_data("pose-synth:16:2", ["input"])
    ctx = CompressionContext(model_path, data, calibration, load_evaluator("pose"), tmp_path)
    options = CompressOptions(prune={"g2": 0.6}, quantize="none")
    recovered, graph, kept = ctx.pruned(options)
    plain, _, _ = ctx.pruned(CompressOptions(prune={"g2": 0.6}, quantize="none", recovery="none"))
    assert kept
    # the evaluation model and the batch-1 graph (latency, export) carry the same refitted weights
    a, b = initializers(recovered), initializers(graph.model)
    changed = [name for name in a if name in initializers(plain) and not np.array_equal(a[name], initializers(plain)[name])]
    assert changed and all(np.array_equal(a[name], b[name]) for name in changed)
    assert list((tmp_path / "reconstruct").glob("*.npz"))
    # a new context reads the refit from the disk cache instead of fitting again
    again = CompressionContext(model_path, data, calibration, load_evaluator("pose"), tmp_path)
    import explorer.compress.context as context_module

    original = context_module.reconstruct_weights
    context_module.reconstruct_weights = None  # type: ignore[assignment]
    try:
        cached_model, _, _ = again.pruned(options)
    finally:
        context_module.reconstruct_weights = original
    assert all(np.array_equal(initializers(cached_model)[n], a[n]) for n in changed)
    # recovery is part of the accuracy's identity, and the int8 path runs on the recovered model
    with_int8 = ctx.measure_accuracy(CompressOptions(prune={"g2": 0.6}, quantize="dpu"))
    without = ctx.measure_accuracy(CompressOptions(prune={"g2": 0.6}, quantize="dpu", recovery="none"))
    assert with_int8.key != without.key and with_int8.macs_after == without.macs_after
    assert np.isfinite(with_int8.metrics["euclidean_error"])
    with pytest.raises(Exception, match="recovery 'magic'"):
        ctx.measure_accuracy(CompressOptions(prune={"g2": 0.6}, recovery="magic"))


def test_the_prefix_computes_each_consumer_input_as_the_whole_model_does() -> None:
    """`Prefix` runs each node once, in pieces between consumer inputs, holding only the tensors still to be
    read; every tensor it gives equals a run of the model cut after that tensor (residual Add and Concat)."""
    from explorer.compress.reconstruct import Prefix
    from explorer.runtime import up_to

    model = graph_from_model(coupled_model()[0]).model
    data = _data(20, 6)
    targets = [n.input[0] for n in model.graph.node if n.op_type == "Conv"]
    prefix = Prefix(data.inputs)
    held = []
    for name in targets:
        got = prefix.up_to(model, name)
        want = run_model(up_to(model, [name]), data.inputs)[name]
        assert np.allclose(got, want, atol=1e-5), name
        held.append(len(prefix.known))
    assert prefix.ran and max(held) < len(model.graph.node)  # the live tensors, not one per layer


def test_the_context_keeps_a_weight_free_variant_and_prunes_it_once(tmp_path: Path) -> None:
    """A study revisiting a pruned variant whose accuracy it knows reads its layer table from memory (no weights
    kept), after its full pruned model has left the few kept with weights."""
    import explorer.compress.context as context_module
    from explorer.data.loaders import load_data

    model_path = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
    data, calibration = load_data("pose-synth:8:3", ["input"]), load_data("pose-synth:8:2", ["input"])
    ctx = CompressionContext(model_path, data, calibration, load_evaluator("pose"), tmp_path)
    options = [CompressOptions(prune={"g2": t}, quantize="none", recovery="none") for t in (0.6, 0.55, 0.5)]
    first = [ctx.measure_accuracy(o) for o in options]
    variant = ctx.variant(options[0])
    assert not variant.graph.weights and ctx.pruned(options[0])[1].weights
    assert variant.graph.layers == ctx.pruned(options[0])[1].layers
    calls = []
    original = context_module.apply_pruning
    context_module.apply_pruning = lambda *a: calls.append(a) or original(*a)  # type: ignore[assignment]
    try:
        ctx._pruned = context_module.Recent(1)  # the full models are gone
        again = [ctx.measure_accuracy(o) for o in options]
    finally:
        context_module.apply_pruning = original
    assert calls == [] and [r.metrics for r in again] == [r.metrics for r in first]
