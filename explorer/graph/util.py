"""Read-only helpers over an ONNX graph: initializers, shapes, producers, consumers, topological order."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor whose dimensions are all known (inputs, value_info, outputs, initializers)."""
    out: dict[str, tuple[int, ...]] = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tt = value.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if all(d >= 0 for d in dims):
            out[value.name] = tuple(dims)
    for init in model.graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    return out


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    out = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]}
    out.update({init.name: init.data_type for init in model.graph.initializer})
    return out


def producers(nodes: Sequence[onnx.NodeProto]) -> dict[str, int]:
    return {name: i for i, node in enumerate(nodes) for name in node.output if name}


def consumers(nodes: Sequence[onnx.NodeProto]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        for name in node.input:
            if name:
                out[name].append(i)
    return out


def topological_order(nodes: Sequence[onnx.NodeProto]) -> list[int]:
    """Kahn's algorithm, stable in the file's node order. Raises ValueError on a cycle."""
    made = producers(nodes)
    indegree = [0] * len(nodes)
    children: dict[int, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        parents = {made[name] for name in node.input if name in made}
        indegree[i] = len(parents)
        for p in parents:
            children[p].append(i)
    ready = deque(i for i in range(len(nodes)) if indegree[i] == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for child in children[i]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) != len(nodes):
        raise ValueError("the graph has a cycle")
    return order


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    value = attribute(node, name, default)
    return int(value) if isinstance(value, int | float) else default


def attr_float(node: onnx.NodeProto, name: str, default: float) -> float:
    value = attribute(node, name, default)
    return float(value) if isinstance(value, int | float) else default


def attr_str(node: onnx.NodeProto, name: str, default: str) -> str:
    value = attribute(node, name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def attr_ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    value = attribute(node, name, None)
    return [int(v) for v in value] if isinstance(value, list | tuple) else None
