from __future__ import annotations

import math

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


def test_a_timing_only_graph_keeps_layers_and_shapes_but_no_weights() -> None:
    from explorer.dpu.partition import partition, subgraph_model
    from explorer.dpu.support import place_layers
    from explorer.graph.layers import WEIGHT_FREE_ELEMENTS, timing_only
    from explorer.hardware.config import DpuConfig, resolve

    graph = graph_from_model(mobilenet_v2(size=96, width=0.5))
    light = timing_only(graph)
    assert light.layers == graph.layers and light.shapes == graph.shapes and not light.weights
    assert [n.output[0] for n in light.nodes] == [n.output[0] for n in graph.nodes]
    assert light.model.ByteSize() < graph.model.ByteSize() / 10
    assert all(not init.raw_data for init in light.model.graph.initializer if math.prod(init.dims) > WEIGHT_FREE_ELEMENTS)
    spec = resolve(DpuConfig())
    placements = tuple(place_layers(graph, spec))
    assert tuple(place_layers(light, spec)) == placements
    sub = partition(light, placements, None).subgraphs[0]
    with pytest.raises(ValueError, match="timing-only"):
        subgraph_model(light, sub)
    assert subgraph_model(graph, partition(graph, placements, None).subgraphs[0]).graph.node
