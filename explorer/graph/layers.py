"""The layer table of a normalised model: one record per node, in topological order.

Operation counts follow the Vitis AI convention: 2 ops per multiply-accumulate. Bytes are int8 (the
DPU's data type): one byte per weight and per feature-map element.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from explorer.errors import ExplorerError
from explorer.graph.util import (
    attr_float,
    attr_int,
    attr_ints,
    attr_str,
    consumers,
    initializers,
    producers,
    static_shapes,
    topological_order,
)

Shape = tuple[int, ...]

ACTIVATIONS = {"relu", "relu6", "leakyrelu", "prelu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "clip"}


@dataclass(frozen=True)
class Layer:
    index: int  # position in topological order
    name: str
    op_type: str
    kind: str
    inputs: tuple[str, ...]  # activation (non-constant) inputs
    outputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    in_channels: int = 0
    out_channels: int = 0
    macs: int = 0
    weight_count: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ops(self) -> int:
        return 2 * self.macs

    @property
    def weight_bytes(self) -> int:
        return self.weight_count  # int8

    @property
    def input_bytes(self) -> int:
        return sum(math.prod(s) for s in self.input_shapes)

    @property
    def output_bytes(self) -> int:
        return sum(math.prod(s) for s in self.output_shapes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "op_type": self.op_type,
            "kind": self.kind,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "pads": list(self.pads),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "macs": self.macs,
            "ops": self.ops,
            "weight_bytes": self.weight_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
        }


@dataclass(frozen=True)
class ModelGraph:
    """A normalised model with its layer table and the tensor facts the partitioner needs."""

    model: onnx.ModelProto
    layers: tuple[Layer, ...]
    nodes: tuple[onnx.NodeProto, ...]  # in the same (topological) order as `layers`
    shapes: dict[str, Shape]
    constants: frozenset[str]
    graph_inputs: tuple[str, ...]
    graph_outputs: tuple[str, ...]
    weights: bool = True  # False: the initializers hold no values (`timing_only`): placement and timing only

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_ops(self) -> int:
        return 2 * self.total_macs

    @property
    def total_weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)


def _pair(seq: list[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    if not seq:
        return default
    return (seq[0], seq[1]) if len(seq) >= 2 else (seq[0], seq[0])


def _pads(
    node: onnx.NodeProto, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    auto = attr_str(node, "auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for i in range(2):
            out = math.ceil(in_hw[i] / stride[i])
            total = max(0, (out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i])
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return pads[0][0], pads[1][0], pads[0][1], pads[1][1]
    p = attr_ints(node, "pads")
    if p is None:
        return 0, 0, 0, 0
    return (p[0], p[1], p[2], p[3]) if len(p) == 4 else (p[0], 0, p[1], 0)


def _scalar(consts: dict[str, np.ndarray], node: onnx.NodeProto, index: int) -> float | None:
    if len(node.input) > index and node.input[index] in consts:
        return float(np.asarray(consts[node.input[index]]).reshape(-1)[0])
    return None


def _classify(
    node: onnx.NodeProto, consts: dict[str, np.ndarray], act_inputs: list[str], shapes: dict[str, Shape]
) -> tuple[str, dict[str, Any]]:
    op = node.op_type
    params: dict[str, Any] = {}
    if op == "Conv":
        if node.input[1] not in consts:
            return "conv_dynamic", params
        groups = attr_int(node, "group", 1)
        weight = consts[node.input[1]]
        in_ch = shapes[node.input[0]][1] if node.input[0] in shapes else weight.shape[1] * groups
        if groups == 1:
            return "conv", params
        if groups == in_ch and weight.shape[0] % groups == 0 and weight.shape[1] == 1:
            params["multiplier"] = weight.shape[0] // groups
            return "dwconv", params
        return "gconv", params
    if op == "ConvTranspose":
        return ("deconv" if node.input[1] in consts else "conv_dynamic"), params
    if op == "Gemm":
        return ("fc" if len(node.input) > 1 and node.input[1] in consts else "matmul"), params
    if op == "MatMul":
        # the DPU's FC takes a flattened (N, features) input; batched products stay a MatMul
        w = consts.get(node.input[1]) if len(node.input) > 1 else None
        rank = len(shapes.get(node.input[0], ()))
        params.update(constant_weights=w is not None, input_rank=rank)
        return ("fc" if w is not None and w.ndim == 2 and rank == 2 else "matmul"), params
    if op == "MaxPool":
        return "maxpool", params
    if op == "AveragePool":
        params["count_include_pad"] = attr_int(node, "count_include_pad", 0)
        return "avgpool", params
    if op == "GlobalAveragePool":
        return "global_avgpool", params
    if op == "GlobalMaxPool":
        return "global_maxpool", params
    if op in ("ReduceMean", "ReduceMax"):
        params["axes"] = attr_ints(node, "axes")
        return op.lower(), params
    if op in ("Add", "Sum"):
        return ("add" if len(act_inputs) >= 2 else "add_const"), params
    if op == "Mul":
        return ("mul" if len(act_inputs) >= 2 else "mul_const"), params
    if op == "Concat":
        params["axis"] = attr_int(node, "axis", 1)
        return "concat", params
    if op == "Relu":
        return "relu", params
    if op == "Clip":
        lo = _scalar(consts, node, 1) if len(node.input) > 1 else attr_float(node, "min", -3.4e38)
        hi = _scalar(consts, node, 2) if len(node.input) > 2 else attr_float(node, "max", 3.4e38)
        params["min"], params["max"] = lo, hi
        if lo is not None and hi is not None and abs(lo) < 1e-6 and abs(hi - 6.0) < 1e-6:
            return "relu6", params
        if lo is not None and abs(lo) < 1e-6 and (hi is None or hi >= 3.4e38):
            return "relu", params
        return "clip", params
    if op == "LeakyRelu":
        params["alpha"] = attr_float(node, "alpha", 0.01)
        return "leakyrelu", params
    if op in ("PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish"):
        return op.lower(), params
    if op == "Softmax":
        params["axis"] = attr_int(node, "axis", -1)
        return "softmax", params
    if op in ("Resize", "Upsample"):
        params["mode"] = attr_str(node, "mode", "nearest")
        return "upsample", params
    if op in ("DepthToSpace", "SpaceToDepth"):
        params["blocksize"] = attr_int(node, "blocksize", 2)
        params["direction"] = "depth_to_space" if op == "DepthToSpace" else "space_to_depth"
        return "reorg", params
    if op == "Flatten":
        return "flatten", params
    if op in ("Reshape", "Squeeze", "Unsqueeze"):
        return "reshape", params
    if op == "Transpose":
        return "transpose", params
    if op == "Pad":
        return "pad", params
    if op == "BatchNormalization":
        return "batchnorm", params
    return "other", params


def analyze(model: onnx.ModelProto) -> ModelGraph:
    """Layer table and tensor facts of a normalised, shape-inferred model. Never changes the model."""
    consts = initializers(model)
    shapes = static_shapes(model)
    nodes_all = list(model.graph.node)
    try:
        order = topological_order(nodes_all)
    except ValueError as exc:
        raise ExplorerError(f"the model graph is not a DAG: {exc}") from exc
    nodes = [nodes_all[i] for i in order]
    const_names = set(consts)
    layers: list[Layer] = []
    for index, node in enumerate(nodes):
        act_inputs = [n for n in node.input if n and n not in const_names]
        missing = [n for n in [*act_inputs, *[o for o in node.output if o]] if n not in shapes]
        if missing:
            raise ExplorerError(
                f"node {node.name or node.op_type!r} ({node.op_type}): shape of {missing[0]!r} is unknown after shape "
                "inference; give static input shapes with --input-shape"
            )
        kind, params = _classify(node, consts, act_inputs, shapes)
        in_shapes = tuple(shapes[n] for n in act_inputs)
        out_shapes = tuple(shapes[o] for o in node.output if o)
        fields: dict[str, Any] = {}
        macs = weights = 0
        out0 = out_shapes[0] if out_shapes else ()
        in0 = in_shapes[0] if in_shapes else ()
        if kind in ("conv", "dwconv", "gconv", "deconv"):
            w = consts[node.input[1]]
            kernel = _pair(attr_ints(node, "kernel_shape"), (int(w.shape[2]), int(w.shape[3]) if w.ndim > 3 else 1))
            stride = _pair(attr_ints(node, "strides"), (1, 1))
            dilation = _pair(attr_ints(node, "dilations"), (1, 1))
            groups = attr_int(node, "group", 1)
            pads = _pads(node, (in0[2], in0[3] if len(in0) > 3 else 1), kernel, stride, dilation)
            bias = int(consts[node.input[2]].size) if len(node.input) > 2 and node.input[2] in consts else 0
            weights = int(w.size) + bias
            in_ch, out_ch = in0[1], out0[1]
            if kind == "deconv":
                macs = int(np.prod(in0)) * (out_ch // groups) * kernel[0] * kernel[1]
            else:
                macs = int(np.prod(out0)) * (in_ch // groups) * kernel[0] * kernel[1]
            fields.update(
                kernel=kernel, stride=stride, dilation=dilation, groups=groups, pads=pads, in_channels=in_ch, out_channels=out_ch
            )
        elif kind == "fc":
            w = consts[node.input[1]]
            trans_b = attr_int(node, "transB", 0) if node.op_type == "Gemm" else 0
            in_f, out_f = (w.shape[1], w.shape[0]) if trans_b else (w.shape[0], w.shape[1])
            bias = int(consts[node.input[2]].size) if len(node.input) > 2 and node.input[2] in consts else 0
            weights = int(w.size) + bias
            batch = int(np.prod(out0)) // out_f if out_f else 1
            macs = batch * in_f * out_f
            fields.update(in_channels=int(in_f), out_channels=int(out_f))
        elif kind in ("maxpool", "avgpool"):
            kernel = _pair(attr_ints(node, "kernel_shape"), (1, 1))
            stride = _pair(attr_ints(node, "strides"), (1, 1))
            dilation = _pair(attr_ints(node, "dilations"), (1, 1))
            pads = _pads(node, (in0[2], in0[3] if len(in0) > 3 else 1), kernel, stride, dilation)
            fields.update(kernel=kernel, stride=stride, pads=pads, dilation=dilation, in_channels=in0[1], out_channels=out0[1])
        elif kind in ("global_avgpool", "global_maxpool"):
            fields.update(
                kernel=(in0[2], in0[3] if len(in0) > 3 else 1),
                stride=(in0[2], in0[3] if len(in0) > 3 else 1),
                in_channels=in0[1],
                out_channels=out0[1],
            )
        elif len(out0) >= 2:
            fields.update(in_channels=in0[1] if len(in0) >= 2 else 0, out_channels=out0[1])
        layers.append(
            Layer(
                index=index,
                name=node.name or f"{node.op_type}_{index}",
                op_type=node.op_type,
                kind=kind,
                inputs=tuple(act_inputs),
                outputs=tuple(o for o in node.output if o),
                input_shapes=in_shapes,
                output_shapes=out_shapes,
                macs=macs,
                weight_count=weights,
                params=params,
                **fields,
            )
        )
    inputs = tuple(i.name for i in model.graph.input if i.name not in const_names)
    return ModelGraph(
        model=model,
        layers=tuple(layers),
        nodes=tuple(nodes),
        shapes=shapes,
        constants=frozenset(const_names),
        graph_inputs=inputs,
        graph_outputs=tuple(o.name for o in model.graph.output),
    )


WEIGHT_FREE_ELEMENTS = 64  # initializers with more elements lose their values in `timing_only`


def timing_only(graph: ModelGraph) -> ModelGraph:
    """`graph` without the values of its weights: everything placement and timing read (layers, shapes, node
    attributes, small constants such as shapes and scales), a small fraction of the memory. A study keeps one per
    model variant it has seen. It cannot be run or cut into subgraph models (`weights` is False)."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    for init in model.graph.initializer:
        if math.prod(init.dims) > WEIGHT_FREE_ELEMENTS:
            dims, kind, name = list(init.dims), init.data_type, init.name
            init.Clear()
            init.name, init.data_type = name, kind
            init.dims.extend(dims)
    by_output = {node.output[0]: node for node in model.graph.node if node.output}
    nodes = tuple(by_output[node.output[0]] for node in graph.nodes)
    return dataclasses.replace(graph, model=model, nodes=nodes, weights=False)


def producer_layers(graph: ModelGraph) -> dict[str, int]:
    return producers(list(graph.nodes))


def consumer_layers(graph: ModelGraph) -> dict[str, list[int]]:
    return consumers(list(graph.nodes))
