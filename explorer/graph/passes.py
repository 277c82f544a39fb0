"""Normalisation passes, as a deployment flow (the Vitis AI ONNX quantizer, now AMD Quark) applies them.

Each takes a model and returns a new one (or its input, when it has nothing to rewrite). `normalize` applies
the exact ones in order and re-infers every shape; `hard_activations` changes the numbers and is an option;
`absorb_qdq` is for placing a quantized model. docs/deployment_flow.md lists each with its vendor name.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from explorer.graph.loader import default_opset, infer_shapes_light
from explorer.graph.util import (
    attr_float,
    attr_int,
    attr_ints,
    attribute,
    consumers,
    initializers,
    producers,
    static_shapes,
    topological_order,
)

_NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _graph_outputs(model: onnx.ModelProto) -> set[str]:
    return {o.name for o in model.graph.output}


def _set_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {name for node in model.graph.node for name in node.input} | _graph_outputs(model)
    dropped = set()
    for i in reversed(range(len(model.graph.initializer))):
        if model.graph.initializer[i].name not in used:
            dropped.add(model.graph.initializer[i].name)
            del model.graph.initializer[i]
    for i in reversed(range(len(model.graph.input))):
        if model.graph.input[i].name in dropped:
            del model.graph.input[i]


def _rewritten(model: onnx.ModelProto, nodes: list[onnx.NodeProto], added: dict[str, np.ndarray]) -> onnx.ModelProto:
    """`model` (a copy the pass owns) with `nodes`, the new initializers `added`, and no unused initializer."""
    _set_nodes(model, nodes)
    model.graph.initializer.extend(numpy_helper.from_array(array, name) for name, array in added.items())
    _drop_unused_initializers(model)
    return model


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    out = _copy(model)
    consts = initializers(out)
    shapes = static_shapes(out)
    outputs = _graph_outputs(out)
    nodes = [out.graph.node[i] for i in topological_order(list(out.graph.node))]
    kept: list[onnx.NodeProto] = []
    new_inits: dict[str, np.ndarray] = {}
    for node in nodes:
        if node.domain not in ("", "ai.onnx") or node.op_type in _NOT_FOLDED or any(o in outputs for o in node.output):
            kept.append(node)
            continue
        value: list[np.ndarray] | None = None
        if node.op_type == "Constant":
            value = [np.asarray(v) for v in ReferenceEvaluator(node).run(None, {})]
        elif node.op_type in ("Shape", "Size") and node.input[0] in shapes and node.input[0] not in consts:
            dims = np.array(shapes[node.input[0]], dtype=np.int64)
            if node.op_type == "Size":
                value = [np.array(int(np.prod(dims)), dtype=np.int64)]
            else:
                start = attr_int(node, "start", 0)
                end = attribute(node, "end", None)
                value = [dims[start : end if isinstance(end, int) else None]]
        elif node.input and all(not name or name in consts for name in node.input):
            feeds = {name: consts[name] for name in node.input if name}
            value = [np.asarray(v) for v in ReferenceEvaluator(node).run(None, feeds)]
        if value is None:
            kept.append(node)
            continue
        for name, array in zip(node.output, value, strict=False):
            consts[name] = np.asarray(array)
            new_inits[name] = np.asarray(array)
    return _rewritten(out, kept, new_inits)


def _noop_slice(node: onnx.NodeProto, shape: list[int], consts: dict[str, np.ndarray]) -> bool:
    """A Slice that keeps every element: start 0, end past the dimension, step 1 on each sliced axis."""
    if len(node.input) < 3 or any(name and name not in consts for name in node.input[1:]):
        return False
    starts, ends = consts[node.input[1]].ravel(), consts[node.input[2]].ravel()
    axes = consts[node.input[3]].ravel() if len(node.input) > 3 and node.input[3] else np.arange(len(starts))
    steps = consts[node.input[4]].ravel() if len(node.input) > 4 and node.input[4] else np.ones(len(starts), dtype=np.int64)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        dim = shape[int(axis) % len(shape)]
        if step != 1 or (start % dim if start < 0 else start) != 0 or (end if end >= 0 else end + dim) < dim:
            return False
    return True


def noops_to_identity(model: onnx.ModelProto) -> onnx.ModelProto:
    """Slices that keep everything and one-way Splits become Identity (removed next by `remove_identities`);
    exporters leave them behind, and each would otherwise be a CPU island. Exact."""
    if not any(n.op_type in ("Slice", "Split") for n in model.graph.node):
        return model  # nothing to rewrite: no copy
    out = _copy(model)
    consts = initializers(out)
    shapes = static_shapes(out)
    nodes = []
    for node in out.graph.node:
        shape = shapes.get(node.input[0]) if node.input and node.op_type in ("Slice", "Split") else None
        noop = shape is not None and (
            (node.op_type == "Slice" and _noop_slice(node, list(shape), consts))
            or (node.op_type == "Split" and len(node.output) == 1)
        )
        nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name) if noop else node)
    _set_nodes(out, nodes)
    _drop_unused_initializers(out)
    return out


def _split_sizes(node: onnx.NodeProto, dim: int, consts: dict[str, np.ndarray]) -> list[int] | None:
    """The sizes of a Split's parts: its `split` input (opset 13 on) or attribute, else equal parts."""
    if len(node.input) > 1 and node.input[1]:
        return [int(v) for v in consts[node.input[1]].ravel()] if node.input[1] in consts else None
    sizes = attr_ints(node, "split")
    if sizes:
        return [int(v) for v in sizes]
    parts = len(node.output)
    if parts == 0:
        return None
    step = -(-dim // parts)  # opset 18 `num_outputs`: equal parts, the last one smaller
    return [min(step, dim - i * step) for i in range(parts)]


def split_to_slices(model: onnx.ModelProto) -> onnx.ModelProto:
    """A Split with known sizes becomes one Slice per part (AMD Quark `ConvertSplitToSlice`). The TorchScript
    exporter writes a `chunk` as two Slices and the dynamo exporter as one Split: after this both are the same
    graph, so they get the same placement and timing. Exact."""
    if not any(n.op_type == "Split" and len(n.output) > 1 for n in model.graph.node):
        return model  # nothing to rewrite: no copy
    out = _copy(model)
    consts = initializers(out)
    shapes = static_shapes(out)
    nodes: list[onnx.NodeProto] = []
    added: dict[str, np.ndarray] = {}
    for node in out.graph.node:
        shape = shapes.get(node.input[0]) if node.op_type == "Split" and len(node.output) > 1 else None
        axis = attr_int(node, "axis", 0) % len(shape) if shape else 0
        sizes = _split_sizes(node, shape[axis], consts) if shape else None
        if shape is None or sizes is None or len(sizes) != len(node.output):
            nodes.append(node)
            continue
        name = node.name or node.output[0]
        start = 0
        for i, (size, part) in enumerate(zip(sizes, node.output, strict=True)):
            bounds = [f"{name}__slice{i}_{what}" for what in ("starts", "ends", "axes")]
            for key, value in zip(bounds, (start, start + size, axis), strict=True):
                added[key] = np.array([value], dtype=np.int64)
            if part:
                nodes.append(helper.make_node("Slice", [node.input[0], *bounds], [part], name=f"{name}__slice{i}"))
            start += size
    return _rewritten(out, nodes, added)


def absorb_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """A quantized (QDQ) model as its float graph, for placement and timing: each QuantizeLinear ->
    DequantizeLinear pair on an activation becomes an Identity (the DPU computes in int8 anyway; the pairs
    only carry the scales), and constant weights behind a DequantizeLinear fold to float. The vendor flow
    hands the compiler such a QDQ model; without this every pair would be a CPU island. Not for measuring
    accuracy: the quantization is what that measures."""
    out = fold_constants(model)  # DequantizeLinear of constant int8 weights -> float weights
    made = {o: n for n in out.graph.node for o in n.output}
    nodes = []
    for node in out.graph.node:
        source = made.get(node.input[0]) if node.op_type == "DequantizeLinear" and node.input else None
        if source is not None and source.op_type == "QuantizeLinear":
            node = helper.make_node("Identity", [source.input[0]], [node.output[0]], name=node.name)
        nodes.append(node)
    read = {name for n in nodes for name in n.input} | _graph_outputs(out)
    _set_nodes(out, [n for n in nodes if n.op_type != "QuantizeLinear" or n.output[0] in read])
    _drop_unused_initializers(out)
    return remove_identities(out)


def remove_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    out = _copy(model)
    outputs = _graph_outputs(out)
    inputs = {i.name for i in out.graph.input} | {i.name for i in out.graph.initializer}
    rename: dict[str, str] = {}
    kept: list[onnx.NodeProto] = []
    for node in out.graph.node:
        if node.op_type not in ("Identity", "Dropout") or (node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]):
            kept.append(node)
            continue
        src, dst = rename.get(node.input[0], node.input[0]), node.output[0]
        if dst in outputs:
            if src in inputs or src in outputs:
                kept.append(node)
                continue
            rename = {k: (dst if v == src else v) for k, v in rename.items()}
            rename[src] = dst  # the producer will write the graph output directly
        else:
            rename[dst] = src
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        for i, name in enumerate(node.output):
            if name in rename and rename[name] in outputs:
                node.output[i] = rename[name]
    _set_nodes(out, kept)
    return out


def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    out = _copy(model)
    consts = initializers(out)
    nodes = list(out.graph.node)
    made, used = producers(nodes), consumers(nodes)
    outputs = _graph_outputs(out)
    removed: set[int] = set()
    replaced: dict[str, np.ndarray] = {}
    for i, bn in enumerate(nodes):
        if bn.op_type != "BatchNormalization" or (len(bn.output) > 1 and any(bn.output[1:])):
            continue
        conv_index = made.get(bn.input[0])
        if conv_index is None:
            continue
        conv = nodes[conv_index]
        if conv.op_type != "Conv" or len(used[conv.output[0]]) != 1 or conv.output[0] in outputs:
            continue
        if conv.input[1] not in consts or any(name not in consts for name in bn.input[1:5]):
            continue
        scale, bias, mean, var = (consts[name].astype(np.float64) for name in bn.input[1:5])
        eps = attr_float(bn, "epsilon", 1e-5)
        factor = scale / np.sqrt(var + eps)
        weight = consts[conv.input[1]].astype(np.float64)
        old_bias = (
            consts[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0])
        )
        new_w = (weight * factor.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32)
        new_b = ((old_bias - mean) * factor + bias).astype(np.float32)
        w_name, b_name = f"{conv.name or conv.output[0]}_W_bnfolded", f"{conv.name or conv.output[0]}_B_bnfolded"
        replaced[w_name], replaced[b_name] = new_w, new_b
        inputs = [conv.input[0], w_name, b_name]
        nodes[conv_index] = helper.make_node(
            "Conv", inputs, [bn.output[0]], name=conv.name, **{a.name: helper.get_attribute_value(a) for a in conv.attribute}
        )
        removed.add(i)
    return _rewritten(out, [n for i, n in enumerate(nodes) if i not in removed], replaced)


def batchnorm_to_depthwise(model: onnx.ModelProto) -> onnx.ModelProto:
    """A BatchNormalization that follows no convolution (pre-activation blocks: BN -> ReLU -> Conv) becomes a
    depthwise 1x1 convolution with the same per-channel scale and bias (AMD Quark `ConvertBNToConv`), which
    the DPU runs when depthwise convolution is available. Exact up to float rounding. Run after `fold_batchnorm`."""
    if not any(n.op_type == "BatchNormalization" for n in model.graph.node):
        return model  # nothing to rewrite: no copy
    out = _copy(model)
    consts = initializers(out)
    shapes = static_shapes(out)
    nodes: list[onnx.NodeProto] = []
    added: dict[str, np.ndarray] = {}
    for node in out.graph.node:
        shape = shapes.get(node.input[0]) if node.op_type == "BatchNormalization" and node.input else None
        if (
            shape is None
            or len(shape) != 4
            or (len(node.output) > 1 and any(node.output[1:]))
            or any(name not in consts for name in node.input[1:5])
        ):
            nodes.append(node)
            continue
        scale, bias, mean, var = (consts[name].astype(np.float64) for name in node.input[1:5])
        factor = scale / np.sqrt(var + attr_float(node, "epsilon", 1e-5))
        name = node.name or node.output[0]
        w_name, b_name = f"{name}_W_depthwise", f"{name}_B_depthwise"
        added[w_name] = factor.reshape(-1, 1, 1, 1).astype(np.float32)
        added[b_name] = (bias - mean * factor).astype(np.float32)
        nodes.append(
            helper.make_node(
                "Conv", [node.input[0], w_name, b_name], [node.output[0]], name=name, group=int(shape[1]), kernel_shape=[1, 1]
            )
        )
    return _rewritten(out, nodes, added)


def reduce_mean_to_global_pool(model: onnx.ModelProto) -> onnx.ModelProto:
    """ReduceMean over both spatial axes of a 4-D tensor -> GlobalAveragePool (then Flatten without keepdims).

    How the dynamo exporter writes a global average pool; the vendor flow rewrites it the same way
    (AMD Quark `ConvertReduceMeanToGlobalAvgPool`). Numerically exact.
    """
    if not any(n.op_type == "ReduceMean" for n in model.graph.node):
        return model  # nothing to rewrite: no copy
    out = _copy(model)
    shapes = static_shapes(out)
    consts = initializers(out)
    nodes: list[onnx.NodeProto] = []
    for node in out.graph.node:
        if node.op_type != "ReduceMean" or not node.input:
            nodes.append(node)
            continue
        shape = shapes.get(node.input[0])
        axes = attr_ints(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1] in consts:  # opset 18: axes as an input
            axes = [int(a) for a in consts[node.input[1]].ravel()]
        if shape is None or len(shape) != 4 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
            nodes.append(node)
            continue
        name = node.name or node.output[0]
        if attr_int(node, "keepdims", 1):
            nodes.append(onnx.helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=name))
        else:
            pooled = f"{node.output[0]}__global_pool"
            nodes.append(onnx.helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=name))
            nodes.append(onnx.helper.make_node("Flatten", [pooled], list(node.output), name=f"{name}__flatten", axis=1))
    _set_nodes(out, nodes)
    _drop_unused_initializers(out)
    return out


HARD_SIGMOID = {"alpha": 1.0 / 6.0, "beta": 0.5}  # the DPU's hsigmoid: relu6(x + 3) / 6 (as the vendor writes it)


def is_dpu_hard_sigmoid(node: onnx.NodeProto) -> bool:
    """A HardSigmoid of the form the DPU computes (alpha 1/6, beta 1/2)."""
    return (
        node.op_type == "HardSigmoid"
        and abs(attr_float(node, "alpha", 0.2) - HARD_SIGMOID["alpha"]) < 1e-6
        and abs(attr_float(node, "beta", 0.5) - HARD_SIGMOID["beta"]) < 1e-6
    )


def fuse_hard_swish(model: onnx.ModelProto) -> onnx.ModelProto:
    """x * HardSigmoid(x) (alpha 1/6, beta 1/2) -> HardSwish, where the gate feeds only that Mul (opset 14 on;
    older exporters write PyTorch's Hardswish so). HardSwish is defined as exactly this product: exact."""
    if default_opset(model) < 14 or not any(is_dpu_hard_sigmoid(n) for n in model.graph.node):
        return model  # nothing to rewrite: no copy
    out = _copy(model)
    nodes = list(out.graph.node)
    readers, made, kept_outputs = consumers(nodes), producers(nodes), _graph_outputs(out)

    def gate_of(x: str, h: str) -> int | None:
        """The HardSigmoid(x) node that produces `h` for this Mul alone, if it is one."""
        gate = made.get(h)
        alone = h not in kept_outputs and len(readers[h]) == 1
        return gate if gate is not None and alone and is_dpu_hard_sigmoid(nodes[gate]) and nodes[gate].input[0] == x else None

    fused: set[int] = set()
    for i, node in enumerate(nodes):
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        for x, h in (node.input, node.input[::-1]):
            gate = gate_of(x, h)
            if gate is not None:
                nodes[i] = helper.make_node("HardSwish", [x], list(node.output), name=node.name)
                fused.add(gate)
                break
    _set_nodes(out, [n for i, n in enumerate(nodes) if i not in fused])
    return out


def hard_activations(model: onnx.ModelProto) -> onnx.ModelProto:
    """Sigmoid -> HardSigmoid(1/6, 1/2) (AMD Quark `ConvertSigmoidToHardSigmoid`), then `fuse_hard_swish`, so
    SiLU/Swish (x * sigmoid(x)) becomes HardSwish: activations the DPU runs on IP 4.x.

    CHANGES THE NUMBERS (sigmoid's slope at 0 is 1/4, HardSigmoid's 1/6): an option of the study
    (`quantization.hard_activations`) and of `explore estimate`/`compress` (`--hard-activations`), never applied
    silently; with it on, the accuracy is measured on the converted model."""
    if not any(n.op_type == "Sigmoid" for n in model.graph.node):
        return model  # nothing to rewrite: no copy
    out = _copy(model)
    nodes = [
        helper.make_node(
            "HardSigmoid", list(n.input), list(n.output), name=n.name, alpha=HARD_SIGMOID["alpha"], beta=HARD_SIGMOID["beta"]
        )
        if n.op_type == "Sigmoid"
        else n
        for n in out.graph.node
    ]
    _set_nodes(out, nodes)
    return fuse_hard_swish(out)


def infer(model: onnx.ModelProto) -> onnx.ModelProto:
    return infer_shapes_light(model)


FOLD_ROUNDS = 32  # each YOLOv8 C2f `chunk` (Shape -> Gather -> Add -> Div -> Mul -> Slice) in a chain needs a round


def fold_to_fixed_point(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and shape inference, again and again until nothing more folds: a tensor whose shape
    is known only once an earlier Reshape's shape input became constant lets its own Shape fold next round."""
    for _ in range(FOLD_ROUNDS):
        before = (len(model.graph.node), len(static_shapes(model)))
        model = infer(fold_constants(model))
        if (len(model.graph.node), len(static_shapes(model))) == before:
            break  # nothing folded and no shape learnt: a fixed point
    return model


def normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding to a fixed point, Splits as Slices, no-op Slice/Split and identity removal,
    x * HardSigmoid(x) as HardSwish, spatial ReduceMean as a global pool, BatchNorm folded into the convolution
    before it (or, standing alone, made a depthwise 1x1 convolution), then shapes re-inferred. All exact."""
    cleaned = fuse_hard_swish(remove_identities(noops_to_identity(split_to_slices(fold_to_fixed_point(model)))))
    return infer(batchnorm_to_depthwise(fold_batchnorm(reduce_mean_to_global_pool(cleaned))))
