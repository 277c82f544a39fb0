"""Training-free recovery after channel pruning: least-squares reconstruction of the consuming layers.

After channels are removed, each convolution (group 1) or Gemm that reads them sees fewer inputs. Its
weights and bias are refitted so that its output on the calibration data matches the unpruned model's
output of the same node, by linear least squares (the reconstruction step of He et al. 2017, "Channel
Pruning for Accelerating Very Deep Neural Networks", and of ThiNet, Luo et al. 2017):

    minimise  sum over samples and output positions of || W' . patch(x_pruned) + b' - y_original ||^2
              + lambda || W' - W ||^2

where x_pruned is the node's input in the pruned model (so a refit also absorbs what the layers before it
lost) and y_original its output in the unpruned model, at `positions` output positions drawn per sample
(seeded). The ridge term holds the weights toward the unpruned ones where the data do not determine them
(a channel that was nearly always zero). Coupled channels need nothing special: the dependency graph
(channels.py) already removed them everywhere; only the consumers' weights change, so the model stays a
valid ONNX graph of the same shape and the int8 path quantizes it as any other.

numpy only: the Gram matrices are accumulated per consumer (size (inputs x kernel + 1)^2) and solved once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from explorer.data.loaders import Dataset
from explorer.graph.util import attr_int, attr_ints, initializers, producers
from explorer.graph.util import consumers as readers
from explorer.runtime import run_model, stream_model

POSITIONS = 64  # output positions drawn per sample and consumer
CHUNK = 64  # samples whose design matrices are stacked into one product
RIDGE = 1e-3  # lambda, relative to the mean of the Gram matrix's diagonal
BIAS_SUFFIX = "_reconstructed_bias"


@dataclass(frozen=True)
class Consumer:
    node: str  # the node's output name (unique), which names it in both models
    op: str  # Conv or Gemm
    input: str
    weight: str
    bias: str | None
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    trans_b: bool = False


def linear_layers(model: onnx.ModelProto) -> list[Consumer]:
    """The convolutions (group 1) and Gemms (transA 0, a 2-D constant weight) of `model`, in graph order: the
    layers a least-squares refit can change (and the consumers that channel selection scores channels by)."""
    weights = initializers(model)
    out = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 or node.input[1] not in weights:
            continue
        weight = node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] in weights else None
        if node.op_type == "Conv":
            if attr_int(node, "group", 1) != 1:
                continue
            kh, kw = weights[weight].shape[2:]
            pads = attr_ints(node, "pads") or [0, 0, 0, 0]
            out.append(
                Consumer(
                    node.output[0],
                    "Conv",
                    node.input[0],
                    weight,
                    bias,
                    (int(kh), int(kw)),
                    tuple(attr_ints(node, "strides") or [1, 1]),  # type: ignore[arg-type]
                    (pads[0], pads[1], pads[2], pads[3]),
                    tuple(attr_ints(node, "dilations") or [1, 1]),  # type: ignore[arg-type]
                )
            )
        elif not attr_int(node, "transA", 0) and weights[weight].ndim == 2:
            one = (1, 1)
            trans_b = attr_int(node, "transB", 0) == 1
            out.append(Consumer(node.output[0], "Gemm", node.input[0], weight, bias, one, one, (0, 0, 0, 0), one, trans_b))
    return out


def consumers_of_pruned(original: onnx.ModelProto, pruned: onnx.ModelProto) -> list[Consumer]:
    """The convolutions (group 1) and Gemms of `pruned` whose weights lost input channels."""
    before, after = initializers(original), initializers(pruned)
    out = []
    for c in linear_layers(pruned):
        axis = 1 if c.op == "Conv" or c.trans_b else 0
        if c.weight in before and after[c.weight].shape[axis] < before[c.weight].shape[axis]:
            out.append(c)
    return out


def patches(x: np.ndarray, c: Consumer, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The receptive fields of output positions (rows, cols) of one sample x (C, H, W): (positions, C*kh*kw),
    in the order of a weight (C, kh, kw) flattened; zero padding outside."""
    ch = x.shape[0]
    kh, kw = c.kernel
    top, left = c.pads[0], c.pads[1]
    padded = np.pad(x, ((0, 0), (top, c.pads[2]), (left, c.pads[3])))
    i = rows[:, None] * c.strides[0] + np.arange(kh)[None, :] * c.dilations[0]  # (P, kh) rows in padded
    j = cols[:, None] * c.strides[1] + np.arange(kw)[None, :] * c.dilations[1]  # (P, kw)
    fields = padded[:, i[:, :, None], j[:, None, :]]  # (C, P, kh, kw)
    return np.ascontiguousarray(fields.transpose(1, 0, 2, 3)).reshape(len(rows), ch * kh * kw)


def reconstruct_weights(
    original: onnx.ModelProto,
    pruned: onnx.ModelProto,
    data: Dataset,
    positions: int = POSITIONS,
    ridge: float = RIDGE,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """New values of the consumers' weights and biases (by initializer name; a bias the node lacked is named
    `<output>_reconstructed_bias`).

    Sequential, in graph order: each consumer is fitted on its input in the pruned model with the consumers
    before it already refitted, so a refit never compensates an error that an earlier refit has removed.
    The unpruned model runs once (its outputs at the drawn positions are kept); each node of the pruned model
    runs once too, in the pieces between one consumer's input and the next (`Prefix`)."""
    consumers = consumers_of_pruned(original, pruned)
    if not consumers:
        return {}
    rng = np.random.default_rng(seed)
    picks: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c.node: [] for c in consumers}
    wanted: dict[str, list[np.ndarray]] = {c.node: [] for c in consumers}
    for count, outs in stream_model(original, data.inputs, extra_outputs=sorted(picks)):
        for c in consumers:
            y = outs[c.node]
            for k in range(count):
                if c.op == "Conv":
                    oh, ow = y.shape[2:]
                    flat = rng.choice(oh * ow, size=min(positions, oh * ow), replace=False)
                    rows, cols = flat // ow, flat % ow
                    picks[c.node].append((rows, cols))
                    wanted[c.node].append(y[k][:, rows, cols].T.astype(np.float64))  # (P, out)
                else:
                    wanted[c.node].append(y[k].reshape(1, -1).astype(np.float64))
    values: dict[str, np.ndarray] = {}
    current = pruned
    prefix = Prefix(data.inputs)
    for c in consumers:
        g: np.ndarray | None = None
        h: np.ndarray | None = None
        inputs = prefix.up_to(current, c.input)
        for sample in range(0, len(inputs), CHUNK):
            x = inputs[sample : sample + CHUNK]
            rows_of_chunk = []  # one design matrix per chunk: a single product per chunk, not one per sample
            for k in range(len(x)):
                if c.op == "Conv":
                    rows, cols = picks[c.node][sample + k]
                    rows_of_chunk.append(patches(x[k], c, rows, cols))
                else:
                    rows_of_chunk.append(x[k].reshape(1, -1))
            design = np.vstack(rows_of_chunk)
            design = np.hstack([design, np.ones((len(design), 1), dtype=design.dtype)]).astype(np.float64)
            target = np.vstack(wanted[c.node][sample : sample + len(x)])
            g = design.T @ design if g is None else g + design.T @ design
            h = design.T @ target if h is None else h + design.T @ target
        assert g is not None and h is not None
        fitted = _solve(c, initializers(current), g, h, ridge)
        values.update(fitted)
        current = apply_weights(current, fitted)
    return values


class Prefix:
    """The pruned model's tensors on the calibration data, computed once each while the consumers are refitted.

    The consumers are refitted in graph order, and a consumer's input is computed after every consumer before
    it was refitted: so each tensor computed for one consumer is final (no consumer still to refit is upstream
    of it). `up_to` runs only the nodes between what is known and the tensor asked for (a model cut out of the
    current one, its inputs the known tensors it reads), and keeps the tensors that nodes not yet run will read.
    Holds a few activations of the whole calibration set (the live ones), not one per layer."""

    def __init__(self, inputs: Mapping[str, np.ndarray]) -> None:
        self.data = dict(inputs)
        self.known: dict[str, np.ndarray] = dict(inputs)
        self.ran: set[int] = set()  # nodes (by index in the model) whose outputs were computed

    def up_to(self, model: onnx.ModelProto, tensor: str) -> np.ndarray:
        """`tensor` of `model` on every sample."""
        nodes = list(model.graph.node)
        made = producers(nodes)
        constant = {init.name for init in model.graph.initializer}
        needed: set[int] = set()
        stack = [tensor]
        while stack:
            name = stack.pop()
            if name in self.known or name in constant or name not in made or made[name] in needed:
                continue
            needed.add(made[name])
            stack.extend(x for x in nodes[made[name]].input if x)
        if needed:
            users = readers(nodes)
            ran = self.ran | needed
            order = sorted(needed)
            produced = [o for i in order for o in nodes[i].output if o]
            live = [o for o in produced if o == tensor or any(u not in ran for u in users.get(o, []))]
            read = sorted({x for i in order for x in nodes[i].input if x in self.known})
            self.known.update(
                run_model(_cut(model, [nodes[i] for i in order], read, live, self.known), {k: self.known[k] for k in read})
            )
            self.ran = ran
            for name in [n for n in self.known if n not in self.data and n != tensor]:
                if all(u in ran for u in users.get(name, [])):
                    del self.known[name]  # every node that reads it has run
        return self.known[tensor]


def _cut(
    model: onnx.ModelProto, nodes: list[onnx.NodeProto], inputs: list[str], outputs: list[str], known: Mapping[str, np.ndarray]
) -> onnx.ModelProto:
    """The model of `nodes` of `model`, reading `inputs` (graph inputs or known tensors, batch first, with the
    model's batch dimension) and returning `outputs`."""
    declared: dict[str, onnx.ValueInfoProto] = {i.name: i for i in model.graph.input}
    batch = next(i for i in model.graph.input if i.name not in {init.name for init in model.graph.initializer})
    dim0 = batch.type.tensor_type.shape.dim[0]

    def declare(name: str) -> onnx.ValueInfoProto:
        if name in declared:
            return declared[name]
        array = known[name]
        info = helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), [None, *array.shape[1:]])
        info.type.tensor_type.shape.dim[0].CopyFrom(dim0)
        return info

    reads = {x for node in nodes for x in node.input if x}
    graph = helper.make_graph(
        nodes,
        model.graph.name,
        [declare(name) for name in inputs],
        [helper.make_empty_tensor_value_info(name) for name in outputs],
        initializer=[init for init in model.graph.initializer if init.name in reads],
    )
    return helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def _solve(c: Consumer, weights: Mapping[str, np.ndarray], g: np.ndarray, h: np.ndarray, ridge: float) -> dict[str, np.ndarray]:
    """Ridge least squares toward the current weights: (G + lambda I) W = H + lambda W0."""
    w = weights[c.weight]
    start = w.reshape(w.shape[0], -1) if c.op == "Conv" else (w if c.trans_b else w.T)  # (out, K)
    bias = weights[c.bias] if c.bias else np.zeros(start.shape[0], dtype=w.dtype)
    prior = np.hstack([start, bias[:, None]]).T.astype(np.float64)  # (K+1, out)
    lam = ridge * float(np.mean(np.diag(g))) + 1e-12
    solved = np.linalg.solve(g + lam * np.eye(len(g)), h + lam * prior)
    new_w, new_b = solved[:-1].T.astype(w.dtype), solved[-1].astype(w.dtype)
    if c.op == "Conv":
        new_w = new_w.reshape(w.shape)
    elif not c.trans_b:
        new_w = new_w.T
    return {c.weight: new_w, c.bias or c.node + BIAS_SUFFIX: new_b}


def apply_weights(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """`model` with the reconstructed initializers; a consumer without a bias gets the new one as input 3."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {init.name for init in out.graph.initializer}
    for init in out.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    for node in out.graph.node:
        name = node.output[0] + BIAS_SUFFIX if node.output else ""
        if name in values and node.op_type in ("Conv", "Gemm") and len(node.input) == 2:
            if name not in present:
                out.graph.initializer.append(numpy_helper.from_array(values[name], name))
                present.add(name)
            node.input.append(name)
    onnx.checker.check_model(out)
    return out
