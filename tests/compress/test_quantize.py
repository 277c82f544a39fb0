"""DPU int8 emulation: power-of-two scales, and a convolution that matches an integer reference."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from explorer.compress.quantize import choose_fix, fix_for_range, quantize, scales_in
from explorer.data.loaders import Dataset
from explorer.graph.prepare import graph_from_model
from explorer.runtime import run_model
from reference.zoo import NetBuilder, mobilenet_v2


def test_fix_positions() -> None:
    assert fix_for_range(127.0) == 0 and fix_for_range(1.0) == 6 and fix_for_range(0.5) == 7
    x = np.random.default_rng(1).standard_normal(10000)
    assert choose_fix(x, "mse") >= choose_fix(x, "minmax")
    assert choose_fix(x, "percentile", 99.0) >= choose_fix(x, "minmax")


def test_every_scale_is_a_power_of_two() -> None:
    graph = graph_from_model(mobilenet_v2(size=64))
    nodes = {layer.outputs[0] for layer in graph.layers}
    x = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    q = quantize(graph.model, nodes, Dataset({"input": x}, {}, "rand", "r"), "mse")
    scales = scales_in(q.model)
    assert len(scales) > 100
    assert all(math.log2(s) == round(math.log2(s)) for s in scales)
    onnx.checker.check_model(q.model)


def test_quantized_convolution_matches_integer_reference() -> None:
    b = NetBuilder("one_conv", (1, 4, 8, 8), seed=3)
    y = b.conv("input", 6, k=3, act=None)
    graph = graph_from_model(b.build([y]))
    conv = graph.nodes[0]
    x = np.random.default_rng(2).standard_normal((1, 4, 8, 8)).astype(np.float32)
    q = quantize(graph.model, {conv.output[0]}, Dataset({"input": x}, {}, "x", "x"), "minmax")
    got = run_model(q.model, {"input": x})[conv.output[0]]
    inits = {i.name: numpy_helper.to_array(i) for i in graph.model.graph.initializer}
    fx, fw, fb, fy = (
        q.activation_fix["input"],
        q.weight_fix[conv.input[1]],
        q.weight_fix[conv.input[2]],
        q.activation_fix[conv.output[0]],
    )
    xq = np.clip(np.round(x * 2.0**fx), -128, 127).astype(np.int64)
    wq = np.clip(np.round(inits[conv.input[1]] * 2.0**fw), -128, 127).astype(np.int64)
    bq = np.clip(np.round(inits[conv.input[2]] * 2.0**fb), -128, 127).astype(np.int64)
    padded = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)))
    acc = np.zeros((1, 6, 8, 8), dtype=np.int64)  # integer accumulator at scale 2^-(fx+fw)
    for i in range(3):
        for j in range(3):
            acc += np.einsum("nchw,oc->nohw", padded[:, :, i : i + 8, j : j + 8], wq[:, :, i, j])
    shift = fx + fw - fb  # bias aligned to the accumulator by a shift, as the DPU does
    acc += (bq * 2**shift)[None, :, None, None] if shift >= 0 else 0
    expected = np.clip(np.round(acc * 2.0 ** (fy - fx - fw)), -128, 127) * 2.0**-fy
    assert shift >= 0
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_streaming_statistics_match_the_whole_tensor() -> None:
    from explorer.compress.quantize import TensorStats

    values = np.random.default_rng(5).standard_normal((40, 5000)).astype(np.float32) * 3
    values[17, 3] = 50.0  # one outlier, in one chunk only
    for method in ("minmax", "mse", "percentile"):
        stats = TensorStats(method, len(values), np.random.default_rng(0))
        for start in range(0, 40, 7):
            stats.update(values[start : start + 7], len(values[start : start + 7]))
        assert stats.max_abs == 50.0
        assert stats.fix(99.99) == choose_fix(values, method, 99.99), method
    kept = sum(part.size for part in stats.parts)
    assert kept <= values.size  # a 200k-value tensor is kept whole; larger ones are sampled
    big = TensorStats("mse", 1000, np.random.default_rng(0))
    for _ in range(100):
        big.update(np.ones((10, 10_000), dtype=np.float32), 10)
    assert sum(part.size for part in big.parts) <= 200_000
