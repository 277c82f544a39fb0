"""The DPU's integer arithmetic in the accuracy emulation (AMD Quark's DPU simulation facts)."""

from __future__ import annotations

import numpy as np

from explorer.compress.dpu_arithmetic import (
    HARD_SIGMOID_SCALE,
    align_fix_positions,
    average_scale,
    emulate,
    leaky_relu_slope,
)
from explorer.compress.quantize import quantize
from explorer.data.loaders import Dataset
from explorer.graph.prepare import graph_from_model
from explorer.runtime import run_model
from reference.zoo import NetBuilder


def test_the_vendor_factors() -> None:
    assert leaky_relu_slope(0.1) == 26 / 256
    assert average_scale(3, 3) == 63 / 64  # 1/9 as 7/64
    assert average_scale(7, 7) == 49 * 21 / 1024  # 1/49 as 21/1024
    assert average_scale(2, 2) == 1.0 and average_scale(4, 4) == 1.0  # powers of two are exact
    assert abs(average_scale(10, 10) - 1.0) < 0.01 and average_scale(300, 300) == 1.0
    assert HARD_SIGMOID_SCALE == 2731 / 16384 * 6


def _net() -> tuple[object, dict[str, str]]:
    b = NetBuilder("arith", (1, 4, 12, 12), seed=2)
    leaky = b.conv("input", 8, k=3, act="leaky")
    pool = b.avgpool(leaky, k=3, s=3)
    hard = b._node("HardSigmoid", [b.conv(pool, 8, k=1, act=None)], b.shape[pool], alpha=1 / 6, beta=0.5)
    graph = graph_from_model(b.build([hard]))
    names = {layer.kind: layer.outputs[0] for layer in graph.layers}
    return graph, names


def test_dpu_nodes_compute_as_the_dpu_and_cpu_nodes_stay_float() -> None:
    graph, names = _net()
    x = np.random.default_rng(0).standard_normal((2, 4, 12, 12)).astype(np.float32)
    extra = [names["leakyrelu"], names["avgpool"], names["conv"]]  # "conv": the last one, before HardSigmoid
    reference = run_model(graph.model, {"input": x}, extra)  # type: ignore[attr-defined]
    emulated = emulate(graph.model, set(names.values()))  # type: ignore[attr-defined]
    got = run_model(emulated.model, {"input": x}, extra)
    assert len(emulated.applied) == 3 and all("node(s)" in line for line in emulated.applied)
    leaky, want = got[names["leakyrelu"]], reference[names["leakyrelu"]]
    np.testing.assert_allclose(leaky[want < 0], want[want < 0] * (26 / 256) / 0.1, rtol=1e-5)
    np.testing.assert_allclose(leaky[want >= 0], want[want >= 0])
    pooled = leaky.reshape(2, 8, 4, 3, 4, 3).mean(axis=(3, 5))
    np.testing.assert_allclose(got[names["avgpool"]], pooled * 63 / 64, rtol=1e-5, atol=1e-6)
    hard = np.clip(got[names["conv"]] / 6 + 0.5, 0, 1) * HARD_SIGMOID_SCALE
    np.testing.assert_allclose(got[graph.graph_outputs[0]], hard, rtol=1e-5, atol=1e-6)  # type: ignore[attr-defined]
    only_cpu = emulate(graph.model, set())  # type: ignore[attr-defined]
    assert not only_cpu.applied and not only_cpu.inner


def test_concat_and_pool_fix_positions_are_aligned() -> None:
    b = NetBuilder("align", (1, 4, 8, 8), seed=1)
    a1, a2 = b.conv("input", 4, k=1), b.conv("input", 4, k=1)
    cat = b.concat([a1, a2])
    pool = b.maxpool(cat, k=2, s=2)
    graph = graph_from_model(b.build([pool]))
    fix = {a1: 6, a2: 4, cat: 5, pool: 7}
    moved = align_fix_positions(graph.model, {cat, pool}, fix)
    assert fix == {a1: 4, a2: 4, cat: 4, pool: 4}
    assert len(moved) == 2 and "AlignConcat" in moved[0] and "AlignPool" in moved[1]


def test_quantize_reports_what_it_emulated() -> None:
    graph, names = _net()
    x = np.random.default_rng(1).standard_normal((4, 4, 12, 12)).astype(np.float32)
    data = Dataset({"input": x}, {}, "x", "x")
    nodes = set(names.values())
    plain = quantize(graph.model, nodes, data)  # type: ignore[attr-defined]
    dpu = quantize(graph.model, nodes, data, dpu_nodes=nodes)  # type: ignore[attr-defined]
    assert not plain.dpu_arithmetic
    assert any("ConvertLeakyReluToDPUVersion" in line for line in dpu.dpu_arithmetic)
    assert any("ConvertAvgPoolToDPUVersion" in line for line in dpu.dpu_arithmetic)
    assert any("ConvertHardSigmoidToDPUVersion" in line for line in dpu.dpu_arithmetic)
    assert dpu.activation_fix[names["leakyrelu"]] == dpu.activation_fix[names["avgpool"]]  # AlignPool, scaled pool too
    a, b = run_model(plain.model, {"input": x}), run_model(dpu.model, {"input": x})
    assert not np.allclose(a[graph.graph_outputs[0]], b[graph.graph_outputs[0]])  # type: ignore[attr-defined]
