"""INT8 quantization that emulates the DPU: symmetric, per tensor, power-of-two scales.

Every weight, bias and activation tensor of the quantized nodes gets a fix position f (scale 2^-f, zero
point 0, int8 range [-128, 127]) and a QuantizeLinear/DequantizeLinear pair in the ONNX model, which
onnxruntime then runs. Activation fix positions are calibrated on data by min-max (the largest f whose
range covers max|x|), percentile (covers the given percentile of |x|) or MSE (the f, among the min-max one
and two finer ones, with the least squared error, as vai_q's MinMSE). Tensors consumed only by an
activation fused into their producer are not quantized between the two (the DPU never writes them).
Calibration streams: the model runs over the calibration set in memory-bounded chunks and each tensor
keeps only its statistics (`TensorStats`), never every sample's intermediates.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Collection, Mapping, MutableMapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from explorer.compress import CALIBRATION_METHODS
from explorer.compress.dpu_arithmetic import align_fix_positions, emulate
from explorer.data.loaders import Dataset
from explorer.errors import ExplorerError
from explorer.graph.util import initializers
from explorer.runtime import stream_model

METHODS = CALIBRATION_METHODS
QMIN, QMAX = -128, 127
WEIGHT_OPS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,)}  # weight and bias input indices
_SAMPLES = 200_000


def fix_for_range(max_abs: float) -> int:
    """The largest fix position f with max_abs * 2^f <= 127 (0 -> a neutral 7)."""
    if not math.isfinite(max_abs) or max_abs <= 0:
        return 7
    return math.floor(math.log2(QMAX / max_abs))


def fake_quant(x: np.ndarray, fix: int) -> np.ndarray:
    scale = 2.0 ** (-fix)
    return np.clip(np.round(x / scale), QMIN, QMAX) * scale


def choose_fix(values: np.ndarray, method: str, percentile: float = 99.99, max_abs: float | None = None) -> int:
    """The fix position of a tensor from its values (or a uniform sample of them, with the whole tensor's
    `max_abs`, which min-max and the MSE search's coarsest candidate need exactly)."""
    a = np.abs(values.astype(np.float64).ravel())
    if a.size == 0:
        return 7
    top = float(a.max()) if max_abs is None else max_abs
    if method == "minmax":
        return fix_for_range(top)
    if method == "percentile":
        return fix_for_range(float(np.percentile(a, percentile)))
    if method == "mse":
        base = fix_for_range(top)
        errors = {f: float(np.mean((values - fake_quant(values, f)) ** 2)) for f in (base, base + 1, base + 2)}
        return min(errors, key=lambda f: (errors[f], f))
    raise ExplorerError(f"calibration method {method!r}: choose one of {', '.join(METHODS)}")


class TensorStats:
    """Streaming calibration statistics of one activation tensor: the exact max |x| and, for percentile and
    MSE, a uniform sample of at most `_SAMPLES` values drawn chunk by chunk (each chunk in proportion to its
    share of the calibration set). Memory is bounded whatever the number of samples."""

    def __init__(self, method: str, total_samples: int, rng: np.random.Generator) -> None:
        self.method, self.total, self.rng = method, total_samples, rng
        self.max_abs = 0.0
        self.parts: list[np.ndarray] = []

    def update(self, values: np.ndarray, samples: int) -> None:
        if values.size:
            self.max_abs = max(self.max_abs, float(np.max(np.abs(values))))
        if self.method == "minmax" or not values.size:
            return
        flat = values.ravel()
        want = math.ceil(_SAMPLES * samples / max(1, self.total))
        self.parts.append(flat.copy() if flat.size <= want else self.rng.choice(flat, want, replace=False))

    def fix(self, percentile: float) -> int:
        if self.method == "minmax":
            return fix_for_range(self.max_abs)
        values = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.float32)
        return choose_fix(values, self.method, percentile, self.max_abs)


@dataclass(frozen=True)
class QuantizedModel:
    model: onnx.ModelProto
    activation_fix: dict[str, int]
    weight_fix: dict[str, int]
    dpu_arithmetic: tuple[str, ...] = ()  # what of the DPU's integer arithmetic the model emulates


def quantize(
    model: onnx.ModelProto,
    quantized_nodes: Collection[str],
    calibration: Dataset,
    method: str = "minmax",
    fused_outputs: Collection[str] = (),
    percentile: float = 99.99,
    seed: int = 0,
    calibration_model: onnx.ModelProto | None = None,
    dpu_nodes: Collection[str] | None = None,
    known: MutableMapping[tuple[str, frozenset[str]], int] | None = None,
) -> QuantizedModel:
    """A QDQ copy of `model` in which the nodes named in `quantized_nodes` (by first output) run on int8.

    `calibration_model` (the same graph, e.g. at batch 1 where `model` has a fixed evaluation batch) is the
    one run for the statistics: its chunk holds fewer samples' intermediates. The nodes named in `dpu_nodes`
    compute as the DPU does (LeakyReLU slope, HardSigmoid and average-pool scaling, aligned fix positions;
    compress/dpu_arithmetic.py).

    `known`: fix positions calibrated before on the same model, method and calibration data, by tensor and by
    which of the nodes upstream of it compute as the DPU does (all its value depends on); they are reused, and
    the ones calibrated here are added. Several splits of one model share most of their tensors."""
    if method not in METHODS:
        raise ExplorerError(f"calibration method {method!r}: choose one of {', '.join(METHODS)}")
    applied: tuple[str, ...] = ()
    if dpu_nodes is not None:
        emulated = emulate(model, dpu_nodes)
        model, applied = emulated.model, emulated.applied
        dpu_nodes = {*dpu_nodes, *emulated.inner}  # a scaled node's own output is now the inner tensor
        if calibration_model is not None:
            calibration_model = emulate(calibration_model, dpu_nodes).model
        quantized_nodes = {*quantized_nodes, *emulated.inner}
        fused_outputs = {*fused_outputs, *emulated.inner}
    consts = initializers(model)
    nodes = [n for n in model.graph.node if n.output and n.output[0] in quantized_nodes]
    graph_inputs = {i.name for i in model.graph.input if i.name not in consts}
    graph_outputs = {o.name for o in model.graph.output}
    producers = {o: n for n in model.graph.node for o in n.output}
    tensors: list[str] = []
    for node in nodes:
        for name in [*node.input, *node.output]:
            if not name or name in consts or name in tensors or name in fused_outputs:
                continue
            if name in graph_inputs or name in producers:
                tensors.append(name)
    # calibration: the float model's activations on the calibration set, chunk by chunk
    upstream = _emulated_upstream(model, set(dpu_nodes or ()))
    keys = {t: (t, upstream.get(t, frozenset())) for t in tensors}
    reused = {t: known[keys[t]] for t in tensors if known is not None and keys[t] in known}
    missing = [t for t in tensors if t not in reused]
    stats = {t: TensorStats(method, len(calibration), np.random.default_rng([seed, zlib.crc32(t.encode())])) for t in missing}
    extra = [t for t in missing if t not in graph_inputs]
    runner = model
    if calibration_model is not None and set(extra) <= {o for n in calibration_model.graph.node for o in n.output}:
        runner = calibration_model
    if extra:
        for count, outputs in stream_model(runner, calibration.inputs, extra_outputs=extra):
            for t in extra:
                stats[t].update(outputs[t], count)
    for t in missing:
        if t in graph_inputs:
            stats[t].update(calibration.inputs[t], len(calibration))
    activation_fix = {t: reused[t] if t in reused else stats[t].fix(percentile) for t in tensors}
    if known is not None:
        known.update({keys[t]: activation_fix[t] for t in missing})
    if dpu_nodes is not None:
        applied += align_fix_positions(model, dpu_nodes, activation_fix)
    weight_fix: dict[str, int] = {}
    for node in nodes:
        for index in WEIGHT_OPS.get(node.op_type, ()):
            if len(node.input) > index and node.input[index] in consts and node.input[index] not in weight_fix:
                weight_fix[node.input[index]] = choose_fix(consts[node.input[index]], "mse" if method == "mse" else "minmax")
        # The DPU adds the bias to the accumulator (fix fx + fw) by a left shift, so the bias may not be
        # finer than the accumulator: fb <= fx + fw (vai_q applies the same constraint).
        indices = WEIGHT_OPS.get(node.op_type, ())
        if len(indices) == 2 and len(node.input) > 2 and node.input[2] in weight_fix and node.input[0] in activation_fix:
            accumulator = activation_fix[node.input[0]] + weight_fix[node.input[1]]
            weight_fix[node.input[2]] = min(weight_fix[node.input[2]], accumulator)
    qdq = _insert_qdq(model, activation_fix, weight_fix, graph_inputs, graph_outputs)
    return QuantizedModel(qdq, activation_fix, weight_fix, applied)


def _emulated_upstream(model: onnx.ModelProto, dpu_nodes: set[str]) -> dict[str, frozenset[str]]:
    """For each tensor, the DPU-computed nodes (by first output) it depends on, itself included."""
    found: dict[str, frozenset[str]] = {}
    for node in _toposort(list(model.graph.node)):
        above = frozenset().union(*(found.get(i, frozenset()) for i in node.input if i))
        if node.output and node.output[0] in dpu_nodes:
            above = above | {node.output[0]}
        for out in node.output:
            found[out] = above
    return found


def _insert_qdq(
    model: onnx.ModelProto,
    activation_fix: Mapping[str, int],
    weight_fix: Mapping[str, int],
    graph_inputs: set[str],
    graph_outputs: set[str],
) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    consts = initializers(model)
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    zero = "qdq_zero_point_int8"
    new_inits.append(numpy_helper.from_array(np.array(0, dtype=np.int8), zero))
    scales: dict[int, str] = {}

    def scale_name(fix: int) -> str:
        if fix not in scales:
            scales[fix] = f"qdq_scale_pow2_{fix}".replace("-", "m")
            new_inits.append(numpy_helper.from_array(np.array(2.0 ** (-fix), dtype=np.float32), scales[fix]))
        return scales[fix]

    rename_input: dict[str, str] = {}
    produced_rename: dict[str, str] = {}
    for t, fix in activation_fix.items():
        s = scale_name(fix)
        if t in graph_inputs:
            q, dq = f"{t}_q", f"{t}_dq"
            new_nodes += [
                helper.make_node("QuantizeLinear", [t, s, zero], [q], name=f"{t}_quantize"),
                helper.make_node("DequantizeLinear", [q, s, zero], [dq], name=f"{t}_dequantize"),
            ]
            rename_input[t] = dq
        else:
            raw, q = f"{t}_float", f"{t}_q"
            produced_rename[t] = raw
            new_nodes += [
                helper.make_node("QuantizeLinear", [raw, s, zero], [q], name=f"{t}_quantize"),
                helper.make_node("DequantizeLinear", [q, s, zero], [t], name=f"{t}_dequantize"),
            ]
    for name, fix in weight_fix.items():
        weights_q = np.clip(np.round(consts[name].astype(np.float64) * 2.0**fix), QMIN, QMAX).astype(np.int8)
        new_inits.append(numpy_helper.from_array(weights_q, f"{name}_int8"))
        new_nodes.append(
            helper.make_node("DequantizeLinear", [f"{name}_int8", scale_name(fix), zero], [name], name=f"{name}_dequantize")
        )
    for node in out.graph.node:
        for i, name in enumerate(node.output):
            if name in produced_rename:
                node.output[i] = produced_rename[name]
        for i, name in enumerate(node.input):
            if name in rename_input:
                node.input[i] = rename_input[name]
    keep = [init for init in out.graph.initializer if init.name not in weight_fix]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep + new_inits)
    nodes = list(new_nodes) + list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend(_toposort(nodes))
    del out.graph.value_info[:]
    onnx.checker.check_model(out)
    return out


def _toposort(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    made = {o: i for i, n in enumerate(nodes) for o in n.output}
    children: dict[int, list[int]] = defaultdict(list)
    indegree = [0] * len(nodes)
    for i, n in enumerate(nodes):
        parents = {made[t] for t in n.input if t in made}
        indegree[i] = len(parents)
        for p in parents:
            children[p].append(i)
    ready = [i for i, d in enumerate(indegree) if d == 0]
    order = []
    while ready:
        i = ready.pop(0)
        order.append(nodes[i])
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    return order


def scales_in(model: onnx.ModelProto) -> list[float]:
    """Every scale used by the model's QuantizeLinear/DequantizeLinear nodes."""
    consts = initializers(model)
    return [float(consts[n.input[1]]) for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
