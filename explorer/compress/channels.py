"""The channel dependency graph of a model: which output channels of which convolutions are coupled.

Every tensor's channels are a list of elements (space, index), where a space is the output channels of
one convolution. Channel-preserving operators (activations, normalisation, pooling, depthwise
convolution, resize) pass the list on; Concat joins lists; element-wise Add/Mul/Sub/Max couple the
channels of their inputs position by position. Spaces coupled that way form a cluster that is pruned
together or not at all. Spaces that reach an operator whose channel layout cannot be sliced (Reshape of a
spatial map, DepthToSpace, graph outputs, grouped convolution, ...) are not prunable, with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx

from explorer.graph.util import attr_int, initializers, static_shapes, topological_order

Element = tuple[int, int]  # (space id, channel index)
PASS_THROUGH = {
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Resize",
    "Upsample",
    "Identity",
    "Dropout",
    "BatchNormalization",
    "PRelu",
    "Elu",
    "Softplus",
}
ELEMENTWISE = {"Add", "Mul", "Sub", "Max", "Min", "Sum", "Div"}
ACTIVATIONS = {"Relu", "Clip", "LeakyRelu"}


@dataclass
class Space:
    id: int
    source: str  # producing node name ("" for graph inputs and opaque tensors)
    source_index: int  # topological position of the source node
    size: int
    prunable: bool = True
    reason: str = ""
    output: str = ""  # the source's output tensor
    activation: str = ""  # tensor after the source's activation (where APoZ is measured)


@dataclass
class ChannelGraph:
    lists: dict[str, list[Element]]
    spaces: dict[int, Space]
    parent: dict[int, int] = field(default_factory=dict)

    def find(self, s: int) -> int:
        while self.parent.get(s, s) != s:
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def clusters(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for s in self.spaces:
            out[self.find(s)].append(s)
        return dict(out)

    def cluster_prunable(self, root: int) -> tuple[bool, str]:
        members = self.clusters()[root]
        for s in members:
            if not self.spaces[s].prunable:
                return False, self.spaces[s].reason
        if len({self.spaces[s].size for s in members}) != 1:
            return False, "coupled convolutions of different widths"
        return True, ""


def _block(graph: ChannelGraph, elements: list[Element], reason: str) -> None:
    for s in {e[0] for e in elements}:
        space = graph.spaces[s]
        if space.prunable:
            space.prunable, space.reason = False, reason


def build_channel_graph(model: onnx.ModelProto) -> ChannelGraph:
    """Channel lists of every 4-D tensor and the prunable convolution output spaces of a normalised model."""
    consts = initializers(model)
    shapes = static_shapes(model)
    nodes = [model.graph.node[i] for i in topological_order(list(model.graph.node))]
    graph = ChannelGraph({}, {})

    def new_space(source: str, index: int, size: int, prunable: bool = True, reason: str = "", output: str = "") -> list[Element]:
        sid = len(graph.spaces)
        graph.spaces[sid] = Space(sid, source, index, size, prunable, reason, output)
        return [(sid, i) for i in range(size)]

    for inp in model.graph.input:
        if inp.name in consts:
            continue
        shape = shapes.get(inp.name, ())
        if len(shape) >= 2:
            graph.lists[inp.name] = new_space("", -1, shape[1], False, "graph input")
    for position, node in enumerate(nodes):
        acts = [t for t in node.input if t and t not in consts]
        lists = [graph.lists.get(t) for t in acts]
        out = node.output[0] if node.output else ""
        out_shape = shapes.get(out, ())
        name = node.name or out
        op = node.op_type
        if op == "Conv" and len(node.input) > 1 and node.input[1] in consts:
            group = attr_int(node, "group", 1)
            w = consts[node.input[1]]
            in_list = lists[0] or []
            if group == 1:
                graph.lists[out] = new_space(name, position, int(w.shape[0]), output=out)
            elif group == len(in_list) == w.shape[0]:
                graph.lists[out] = list(in_list)  # depthwise: channel i stays channel i
            else:
                _block(graph, in_list, f"grouped convolution {name}")
                graph.lists[out] = new_space(name, position, int(w.shape[0]), False, f"grouped convolution {name}")
            continue
        if op == "ConvTranspose" and len(node.input) > 1 and node.input[1] in consts and attr_int(node, "group", 1) == 1:
            size = out_shape[1] if len(out_shape) > 1 else 0
            graph.lists[out] = new_space(name, position, size, False, f"transposed convolution {name}")
            continue
        if op in PASS_THROUGH and lists and lists[0] is not None:
            graph.lists[out] = list(lists[0])
            if op in ACTIVATIONS:
                for s in {e[0] for e in lists[0]}:
                    space = graph.spaces[s]
                    if not space.activation and acts[0] == space.output:
                        space.activation = out
            continue
        if op in ELEMENTWISE and lists and all(lst is not None for lst in lists):
            activation_lists = [lst for lst in lists if lst is not None]
            if len(activation_lists) >= 2:
                if len({len(lst) for lst in activation_lists}) != 1 or len({shapes.get(t) for t in acts}) != 1:
                    for lst in activation_lists:
                        _block(graph, lst, f"{op} {name} broadcasts between feature maps")
                else:
                    first = activation_lists[0]
                    for lst in activation_lists[1:]:
                        for (sa, ia), (sb, ib) in zip(first, lst, strict=True):
                            if ia != ib:
                                _block(graph, first + lst, f"{op} {name} couples channels out of order")
                            graph.union(sa, sb)
            graph.lists[out] = list(activation_lists[0])
            continue
        if op == "Concat" and attr_int(node, "axis", 1) in (1, -3) and all(lst is not None for lst in lists):
            graph.lists[out] = [e for lst in lists if lst is not None for e in lst]
            continue
        if op in ("Flatten", "Reshape", "Squeeze") and lists and lists[0] is not None:
            in_shape = shapes.get(acts[0], ())
            if len(in_shape) == 4 and in_shape[2] == in_shape[3] == 1 and len(out_shape) == 2:
                graph.lists[out] = list(lists[0])  # (N, C, 1, 1) -> (N, C): features keep their order
                continue
        if op in ("Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in consts and lists and lists[0] is not None:
            continue  # consumes the features of its input; its own output is not a channel map
        for maybe in lists:
            if maybe is not None:
                _block(graph, maybe, f"{op} {name} needs every channel")
        if len(out_shape) >= 2:
            graph.lists[out] = new_space(name, position, out_shape[1], False, f"output of {op} {name}")
    for output in model.graph.output:
        if output.name in graph.lists:
            _block(graph, graph.lists[output.name], "reaches a graph output")
    for space in graph.spaces.values():
        if space.prunable and not space.activation:
            space.prunable, space.reason = False, "no ReLU/ReLU6 after it (APoZ needs an activation)"
    return graph


def keep_positions(elements: list[Element], kept: dict[int, np.ndarray]) -> list[int]:
    """Positions of `elements` that survive, given the kept channel indices of each pruned space."""
    out = []
    for pos, (space, index) in enumerate(elements):
        keep = kept.get(space)
        if keep is None or index in keep:
            out.append(pos)
    return out
