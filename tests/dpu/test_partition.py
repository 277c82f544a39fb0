"""Partitioning: subgraphs are valid ONNX models, and chaining them reproduces the whole model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from explorer.dpu.partition import cut_points, partition, run_partition, subgraph_model
from explorer.dpu.support import CPU, DPU, place_layers
from explorer.graph.prepare import graph_from_model
from explorer.hardware.config import DpuConfig, resolve
from tests.models import branches, tiny_resnet, unsupported_middle

MODELS = {"tiny_resnet": tiny_resnet, "unsupported_middle": unsupported_middle, "branches": branches}


def reference(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(MODELS))
def test_chained_subgraphs_reproduce_the_model_at_every_split(name: str) -> None:
    model = MODELS[name]()
    graph = graph_from_model(model)
    x = np.random.default_rng(7).standard_normal(graph.shapes["input"]).astype(np.float32)
    expected = reference(model, x)
    for split in [None, *range(0, len(graph.layers) + 1, 2)]:
        part = partition(graph, place_layers(graph, resolve(DpuConfig(softmax=False)), split), split)
        outputs = run_partition(graph, part, {"input": x})
        for want, got in zip(expected, outputs.values(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_unsupported_operator_in_the_middle_gives_dpu_cpu_dpu() -> None:
    graph = graph_from_model(unsupported_middle())
    part = partition(graph, place_layers(graph, resolve(DpuConfig())))
    assert [s.device for s in part.subgraphs] == [DPU, CPU, DPU]
    cpu = part.subgraphs[1]
    assert [graph.layers[i].kind for i in cpu.layers] == ["sigmoid"]
    # the skip connection around the sigmoid goes from the first DPU subgraph straight to the last one
    first, last = part.subgraphs[0], part.subgraphs[2]
    assert set(first.outputs) & set(last.inputs)


def test_skip_connection_crosses_cut() -> None:
    graph = graph_from_model(tiny_resnet())
    cuts = cut_points(graph)
    add = next(layer for layer in graph.layers if layer.kind == "add")
    skip_source = add.inputs[0]
    # between the first conv and the add, both the skip tensor and the main path cross the cut
    inside = [c for c in cuts if graph.layers[1].index < c.index <= add.index]
    assert inside and all(skip_source in c.tensors for c in inside)
    assert cuts[0].tensors == ("input",)
    assert cuts[-1].tensors == tuple(graph.graph_outputs)
    assert cuts[0].bytes_int8 == 3 * 32 * 32


def test_subgraph_models_are_valid_onnx() -> None:
    graph = graph_from_model(branches())
    part = partition(graph, place_layers(graph, resolve(DpuConfig(softmax=False)), split=5), 5)
    for sub in part.subgraphs:
        model = subgraph_model(graph, sub)
        onnx.checker.check_model(model)
        assert [i.name for i in model.graph.input] == list(sub.inputs)


def test_placements_group_into_few_subgraphs() -> None:
    graph = graph_from_model(branches())
    part = partition(graph, place_layers(graph, resolve(DpuConfig(softmax=False))))
    # everything but the softmax runs on the DPU: one DPU subgraph then one CPU subgraph
    assert [s.device for s in part.subgraphs] == [DPU, CPU]
