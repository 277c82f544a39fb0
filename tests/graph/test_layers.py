from __future__ import annotations

import pytest

from explorer.graph.prepare import graph_from_model
from reference.zoo import NetBuilder, mobilenet_v2, resnet50


def test_conv_layer_record() -> None:
    b = NetBuilder("one", (1, 3, 32, 32))
    y = b.conv("input", 16, k=3, s=2, act="relu6")
    graph = graph_from_model(b.build([y]))
    conv, act = graph.layers
    assert (conv.kind, conv.kernel, conv.stride, conv.pads, conv.groups) == ("conv", (3, 3), (2, 2), (1, 1, 1, 1), 1)
    assert conv.output_shapes == ((1, 16, 16, 16),)
    assert conv.macs == 16 * 16 * 16 * 3 * 3 * 3 and conv.ops == 2 * conv.macs
    assert conv.weight_bytes == 16 * 3 * 9 + 16
    assert conv.input_bytes == 3 * 32 * 32 and conv.output_bytes == 16 * 16 * 16
    assert act.kind == "relu6"  # Clip(0, 6) is recognised as ReLU6


def test_depthwise_and_grouped_kinds() -> None:
    b = NetBuilder("dw", (1, 8, 16, 16))
    y = b.dwconv("input", k=3)
    z = b.conv(y, 8, k=1, groups=2)
    graph = graph_from_model(b.build([z]))
    kinds = [layer.kind for layer in graph.layers]
    assert kinds == ["dwconv", "relu6", "gconv", "relu"]
    assert graph.layers[0].macs == 8 * 16 * 16 * 9


def test_reference_workloads_match_published_gop() -> None:
    # Vitis AI model zoo: ResNet-50 (Caffe) 7.7 GOP, MobileNetV2 224 0.59-0.6 GOP.
    assert graph_from_model(resnet50()).total_ops / 1e9 == pytest.approx(7.7, rel=0.01)
    assert graph_from_model(mobilenet_v2()).total_ops / 1e9 == pytest.approx(0.6, rel=0.02)
