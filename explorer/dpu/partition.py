"""Cut points and the partition of a model into an ordered list of DPU and CPU subgraphs.

A cut `k` (0..N over the topological layer order) separates layers [0, k) from [k, N); the tensors
crossing it are those produced before it (or graph inputs) and used after it, plus graph outputs
produced before it. `split = k` keeps layers k.. on the CPU; `split = None` lets the DPU take all it
supports. Subgraphs are maximal runs of one device in an execution order chosen to switch device as
rarely as possible; each can be written as a valid ONNX model, and running them in order reproduces
the whole model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from explorer.dpu.support import CPU, DPU, Placement
from explorer.graph.layers import ModelGraph
from explorer.graph.util import elem_types


@dataclass(frozen=True)
class Cut:
    index: int
    tensors: tuple[str, ...]
    bytes_int8: int  # size of the crossing tensors at one byte per element

    @property
    def after_layer(self) -> str:
        return "input" if self.index == 0 else f"layer {self.index - 1}"


@dataclass(frozen=True)
class Subgraph:
    index: int
    device: str
    layers: tuple[int, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Partition:
    subgraphs: tuple[Subgraph, ...]
    placements: tuple[Placement, ...]
    split: int | None

    @property
    def dpu_subgraphs(self) -> tuple[Subgraph, ...]:
        return tuple(s for s in self.subgraphs if s.device == DPU)

    @property
    def cpu_layers(self) -> list[int]:
        return [i for i, p in enumerate(self.placements) if p.device == CPU]


def _numel(graph: ModelGraph, tensor: str) -> int:
    return int(np.prod(graph.shapes.get(tensor, (0,))))


def cut_points(graph: ModelGraph) -> list[Cut]:
    """Every cut 0..N with the tensors live across it (skip connections included)."""
    n = len(graph.layers)
    first_use: dict[str, int] = {}
    last_use: dict[str, int] = defaultdict(lambda: -1)
    made_at: dict[str, int] = {t: -1 for t in graph.graph_inputs}
    for layer in graph.layers:
        for t in layer.outputs:
            made_at[t] = layer.index
        for t in layer.inputs:
            first_use.setdefault(t, layer.index)
            last_use[t] = max(last_use[t], layer.index)
    for t in graph.graph_outputs:
        last_use[t] = n  # delivered after the last layer
    cuts = []
    for k in range(n + 1):
        live = tuple(t for t, made in made_at.items() if made < k <= last_use[t])
        cuts.append(Cut(k, live, sum(_numel(graph, t) for t in live)))
    return cuts


def _execution_order(graph: ModelGraph, placements: Sequence[Placement]) -> list[int]:
    """A topological order that finishes the current device's ready layers before switching."""
    made = {t: layer.index for layer in graph.layers for t in layer.outputs}
    parents = [{made[t] for t in layer.inputs if t in made} for layer in graph.layers]
    children: dict[int, list[int]] = defaultdict(list)
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    pending = [len(ps) for ps in parents]
    ready = {
        DPU: [i for i, c in enumerate(pending) if c == 0 and placements[i].device == DPU],
        CPU: [i for i, c in enumerate(pending) if c == 0 and placements[i].device == CPU],
    }
    order: list[int] = []
    current = placements[0].device if placements else DPU
    while ready[DPU] or ready[CPU]:
        if not ready[current]:
            other = CPU if current == DPU else DPU
            # switch only when the current device has nothing left to do
            current = other if ready[other] else current
        ready[current].sort()
        i = ready[current].pop(0)
        order.append(i)
        for child in children[i]:
            pending[child] -= 1
            if pending[child] == 0:
                ready[placements[child].device].append(child)
    return order


def partition(graph: ModelGraph, placements: Sequence[Placement], split: int | None = None) -> Partition:
    order = _execution_order(graph, placements)
    runs: list[list[int]] = []
    for i in order:
        if runs and placements[runs[-1][0]].device == placements[i].device:
            runs[-1].append(i)
        else:
            runs.append([i])
    used_by: dict[str, set[int]] = defaultdict(set)
    for layer in graph.layers:
        for t in layer.inputs:
            used_by[t].add(layer.index)
    outputs = set(graph.graph_outputs)
    subgraphs = []
    for n, run in enumerate(runs):
        members = set(run)
        produced = [t for i in run for t in graph.layers[i].outputs]
        produced_set = set(produced)
        inputs: list[str] = []
        for i in run:
            for t in graph.layers[i].inputs:
                if t not in produced_set and t not in inputs:
                    inputs.append(t)
        outs = [t for t in produced if t in outputs or used_by[t] - members]
        subgraphs.append(Subgraph(n, placements[run[0]].device, tuple(run), tuple(inputs), tuple(outs)))
    return Partition(tuple(subgraphs), tuple(placements), split)


def subgraph_model(graph: ModelGraph, sub: Subgraph) -> onnx.ModelProto:
    """The subgraph as a standalone, valid ONNX model (same opset, its own initializers)."""
    if not graph.weights:
        raise ValueError("a timing-only graph (graph/layers.py timing_only) has no weights to cut into subgraph models")
    types = elem_types(graph.model)
    nodes = [graph.nodes[i] for i in sub.layers]
    needed = {t for node in nodes for t in node.input if t}
    inits = [init for init in graph.model.graph.initializer if init.name in needed]

    def info(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), list(graph.shapes[name]))

    g = helper.make_graph(
        nodes,
        f"{graph.model.graph.name}_sg{sub.index}_{sub.device.lower()}",
        [info(t) for t in sub.inputs],
        [info(t) for t in sub.outputs],
        initializer=inits,
    )
    model = helper.make_model(g, opset_imports=list(graph.model.opset_import), ir_version=graph.model.ir_version)
    onnx.checker.check_model(model)
    return model


def run_partition(graph: ModelGraph, part: Partition, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the subgraphs in order with onnxruntime (CPU) and return the graph outputs."""
    from explorer.runtime import session

    tensors: dict[str, np.ndarray] = dict(feeds)
    for sub in part.subgraphs:
        runner = session(subgraph_model(graph, sub), optimize=False)
        results = runner.run(list(sub.outputs), {t: tensors[t] for t in sub.inputs})  # type: ignore[attr-defined]
        tensors.update(zip(sub.outputs, results, strict=True))
    return {t: tensors[t] for t in graph.graph_outputs}
