"""Operator support per PG338 Table 1: each rule puts a layer on the CPU with its reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from explorer.dpu.support import CPU, DPU, place_layers
from explorer.graph.layers import ModelGraph
from explorer.graph.prepare import graph_from_model
from explorer.hardware.config import DpuConfig, resolve
from reference.zoo import NetBuilder

V41 = DpuConfig()
V34_MIN = DpuConfig(ip_version="3.4", depthwise=False, avg_pool=False, elew_mult=False, save_argmax=False, relu_type="relu_relu6")


def single(build: Callable[[NetBuilder], str], shape: tuple[int, ...] = (1, 16, 32, 32), opset: int = 13) -> ModelGraph:
    b = NetBuilder("t", shape, seed=0, opset=opset)
    return graph_from_model(b.build([build(b)]))


def placement_of(graph: ModelGraph, kind: str, config: DpuConfig = V41) -> tuple[str, str]:
    placed = place_layers(graph, resolve(config))
    index = next(i for i, layer in enumerate(graph.layers) if layer.kind == kind)
    return placed[index].device, placed[index].reason


@pytest.mark.parametrize(
    ("build", "kind", "reason"),
    [
        (lambda b: b.conv("input", 16, k=17, p=0, act=None), "conv", "kernel 17x17 outside 1-16"),
        (lambda b: b.conv("input", 16, k=3, s=9, act=None), "conv", "stride 9x9 outside 1-8"),
        (lambda b: b.conv("input", 16, k=3, p=3, act=None), "conv", "padding"),
        (lambda b: b.conv("input", 16, k=3, s=2, dilation=2, act=None), "conv", "dilated convolution needs stride 1"),
        (lambda b: b.conv("input", 8, k=1, groups=2, act=None), "gconv", "grouped convolution"),
        (lambda b: b.maxpool("input", k=9, s=2), "maxpool", "max-reduce"),
        (lambda b: b.upsample("input", 2, mode="linear"), "upsample", "nearest neighbour only"),
        (lambda b: b.act("input", "sigmoid"), "sigmoid", "not supported by the DPU"),
        (lambda b: b.softmax("input", axis=1), "softmax", "softmax core"),
    ],
)
def test_rules_put_layers_on_cpu_with_reason(build: Callable[[NetBuilder], str], kind: str, reason: str) -> None:
    device, why = placement_of(single(build), kind)
    assert device == CPU and reason in why


def test_channel_limit_depends_on_channel_parallel() -> None:
    # B512: channel_parallel 8 -> at most 2048 channels; B4096: 16 -> 4096.
    graph = single(lambda b: b.conv("input", 3000, k=1, act=None), (1, 8, 4, 4))
    assert placement_of(graph, "conv", DpuConfig(arch="B512"))[0] == CPU
    assert placement_of(graph, "conv", DpuConfig(arch="B4096"))[0] == DPU


def test_bank_depth_constraint() -> None:
    # kernel 16x16 with ceil(96/16) = 6 channel groups: 1536 > bank_depth/2 = 1024
    graph = single(lambda b: b.conv("input", 16, k=16, p=0, act=None), (1, 96, 32, 32))
    device, why = placement_of(graph, "conv")
    assert device == CPU and "bank_depth/2" in why


def test_depthwise_only_when_enabled() -> None:
    graph = single(lambda b: b.dwconv("input", act=None))
    assert placement_of(graph, "dwconv", V41)[0] == DPU
    device, why = placement_of(graph, "dwconv", V34_MIN)
    assert device == CPU and "depthwise convolution is disabled" in why


def test_average_pool_only_when_enabled() -> None:
    graph = single(lambda b: b.global_avgpool(b.conv("input", 16, k=1)), (1, 16, 7, 7))
    assert placement_of(graph, "global_avgpool", V41)[0] == DPU
    assert "average pooling is disabled" in placement_of(graph, "global_avgpool", V34_MIN)[1]


def test_leakyrelu_slope_and_relu_type() -> None:
    def leaky(alpha: float) -> ModelGraph:
        def build(b: NetBuilder) -> str:
            y = b.conv("input", 16, k=3, act=None)
            return b._node("LeakyRelu", [y], b.shape[y], alpha=alpha)

        return single(build)

    assert placement_of(leaky(0.1), "leakyrelu")[0] == DPU
    device, why = placement_of(leaky(0.2), "leakyrelu")
    assert device == CPU and "0.1" in why
    assert "relu_leakyrelu_relu6" in placement_of(leaky(0.1), "leakyrelu", DpuConfig(relu_type="relu_relu6"))[1]


def test_activation_after_cpu_layer_stays_on_cpu() -> None:
    graph = single(lambda b: b.conv("input", 16, k=17, p=0, act="relu"))
    device, why = placement_of(graph, "relu")
    assert device == CPU and "runs on the CPU" in why


def test_flatten_fc_kernel_limit() -> None:
    def fc_after(size: int) -> ModelGraph:
        return single(lambda b: b.fc(b.flatten("input"), 10), (1, 4, size, size))

    assert placement_of(fc_after(8), "fc")[0] == DPU
    device, why = placement_of(fc_after(20), "fc")
    assert device == CPU and "Flatten+FC" in why


def test_split_keeps_later_layers_on_cpu() -> None:
    graph = single(lambda b: b.conv(b.conv("input", 16, k=3), 16, k=3))
    placed = place_layers(graph, resolve(V41), split=2)
    assert [p.device for p in placed] == [DPU, DPU, CPU, CPU]
    assert placed[2].reason == "after the split point 2"


def test_eltwise_and_concat_supported() -> None:
    graph = single(lambda b: b.concat([b.add(b.conv("input", 16, k=1), b.conv("input", 16, k=1)), b.conv("input", 8, k=1)]))
    placed = place_layers(graph, resolve(V41))
    assert all(p.device == DPU for p in placed)


def test_a_matmul_reason_tells_constant_weights_from_dynamic_ones() -> None:
    """A batched MatMul with constant weights is on the CPU for its input rank, not for 'non-constant weights'."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from explorer.graph.layers import analyze
    from explorer.graph.loader import prepare_model
    from explorer.graph.passes import normalize
    from explorer.hardware.config import DpuConfig, resolve

    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["const_w"]), helper.make_node("MatMul", ["const_w", "dyn"], ["out"])],
        "matmuls",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 16]),
            helper.make_tensor_value_info("dyn", TensorProto.FLOAT, [1, 4, 2]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 2])],
        [w],
    )
    model = analyze(normalize(prepare_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))))
    reasons = [p.reason for p in place_layers(model, resolve(DpuConfig()))]
    assert reasons[0].startswith("MatMul with constant weights on a rank-3 input")
    assert reasons[1] == "MatMul with non-constant weights"


@pytest.mark.parametrize("op", ["HardSwish", "HardSigmoid"])
def test_hard_activations_run_on_ip_4x_after_a_convolution_or_depthwise_only(op: str) -> None:
    def after_conv(b: NetBuilder) -> str:
        y = b.conv("input", 16, k=3, act=None)
        return b._node(op, [y], b.shape[y])

    def after_sum(b: NetBuilder) -> str:
        x = b.conv("input", 16, k=3, act=None)
        s = b.add(x, b.conv("input", 16, k=3, act=None))
        return b._node(op, [s], b.shape[s])

    kind = op.lower()
    device, why = placement_of(single(after_conv, opset=14), kind)
    assert device == DPU and why.startswith("fused into")  # IP 4.1 (UG1414 3.x, Vitis AI 2.5+)
    device, why = placement_of(single(after_conv, opset=14), kind, V34_MIN)
    assert device == CPU and "from IP 4.0" in why
    device, why = placement_of(single(after_sum, opset=14), kind)
    assert device == CPU and "not after add" in why  # not right after an element-wise sum

    def after_depthwise(b: NetBuilder) -> str:
        y = b.dwconv("input", act=None)
        return b._node(op, [y], b.shape[y])

    device, why = placement_of(single(after_depthwise, opset=14), kind)  # the ISA1 ALU has hsigmoid
    assert device == DPU and why.startswith("fused into")


def test_average_pools_beyond_8x8_run_on_the_ip_4x_alu_only() -> None:
    graph = single(lambda b: b.avgpool("input", k=9, s=1))
    assert placement_of(graph, "avgpool")[0] == DPU  # ISA1 ALU: kernel 1-256
    device, why = placement_of(graph, "avgpool", DpuConfig(ip_version="3.4"))
    assert device == CPU and "only square 2x2 to 8x8 is supported by PG338 Table 1 (IP 3.x)" in why
    big = single(lambda b: b.global_avgpool("input"), shape=(1, 16, 20, 20))
    assert placement_of(big, "global_avgpool")[0] == DPU
    # IP 3.x: 20x20 splits exactly into a 4x4 pool then a 5x5 global pool (Quark SplitLargeKernelPool) ...
    assert placement_of(big, "global_avgpool", DpuConfig(ip_version="3.4"))[0] == DPU
    prime = single(lambda b: b.global_avgpool("input"), shape=(1, 16, 13, 13))  # ... 13x13 has no such split
    device, why = placement_of(prime, "global_avgpool", DpuConfig(ip_version="3.4"))
    assert device == CPU and "2x2 to 8x8" in why
