"""Where the DPU's integer arithmetic differs from float, as the vendor documents it, for the accuracy emulation.

Facts from AMD Quark 0.13 (`quark/onnx/postprocess/simulation/simulate_dpu.py`, `quantization/quant_utils.py`,
`postprocess/refinement/refine.py`; docs/deployment_flow.md):
- LeakyReLU: the slope is stored in 1/256 steps: alpha -> round(alpha * 256) / 256 (0.1 -> 26/256)
  (`ConvertLeakyReluToDPUVersion`).
- HardSigmoid (alpha 1/6, beta 0.5) and so HardSwish: the DPU multiplies by 2731/16384 instead of 1/6
  (`ConvertHardSigmoidToDPUVersion`, HARD_SIGMOID_SCALE).
- Average pooling: the DPU divides by the kernel area as a multiply by k / 2^n, the closest such fraction
  (a table for 3x3, 5x5, 6x6, 7x7, 14x14; none beyond 255) (`ConvertAvgPoolToDPUVersion`).
- Fix positions: a concatenation's inputs and output share the smallest of their fix positions, a pooling
  layer's input and output likewise (`AlignConcat`, `AlignPool`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, MutableMapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from explorer.graph.passes import is_dpu_hard_sigmoid
from explorer.graph.util import attr_float, attr_ints, static_shapes

HARD_SIGMOID_SCALE = (2731.0 / 16384.0) / (1.0 / 6.0)
_AVGPOOL_TABLE = {
    3: 9.0 * 7.0 / 64.0,
    5: 25.0 * 10.0 / 256.0,
    6: 36.0 * 7.0 / 256.0,
    7: 49.0 * 21.0 / 1024.0,
    14: 196.0 * 21.0 / 4096.0,
}
POOLS = ("MaxPool", "AveragePool", "GlobalAveragePool")
_LEAKY = "LeakyReLU slope in 1/256 steps (ConvertLeakyReluToDPUVersion)"


def leaky_relu_slope(alpha: float) -> float:
    return round(alpha * 256) / 256.0


def average_scale(kh: int, kw: int) -> float:
    """The factor by which the DPU's average pool differs from the true mean (1.0 where it is exact)."""
    if kh > 255 or kw > 255:
        return 1.0
    if kh == kw and kh in _AVGPOOL_TABLE:
        return float(_AVGPOOL_TABLE[kh])
    area = kh * kw
    best = min(range(7 + math.ceil(math.log2(area))), key=lambda n: abs(round(2.0**n / area) / 2.0**n - 1 / area))
    return float(round(2.0**best / area) / 2.0**best * area)


@dataclass(frozen=True)
class Emulated:
    """The model with the DPU's arithmetic, the tensors the rewrite put between an operator and its scale
    (the DPU never writes them: not quantized), and what was applied, for the user."""

    model: onnx.ModelProto
    inner: frozenset[str]
    applied: tuple[str, ...]


def emulate(model: onnx.ModelProto, dpu_outputs: Collection[str]) -> Emulated:
    """A copy of `model` in which the nodes whose first output is in `dpu_outputs` compute as the DPU does."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    shapes = static_shapes(model)
    counts: dict[str, int] = {}
    inner: set[str] = set()
    scales: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    for node in out.graph.node:
        nodes.append(node)
        if not node.output or node.output[0] not in dpu_outputs:
            continue
        factor, what = 1.0, ""
        if node.op_type == "LeakyRelu":
            alpha = attr_float(node, "alpha", 0.01)
            if leaky_relu_slope(alpha) != alpha:
                del node.attribute[:]
                node.attribute.append(helper.make_attribute("alpha", leaky_relu_slope(alpha)))
                counts[_LEAKY] = counts.get(_LEAKY, 0) + 1
        elif node.op_type == "HardSwish" or is_dpu_hard_sigmoid(node):
            factor, what = HARD_SIGMOID_SCALE, "HardSigmoid/HardSwish as x 2731/16384 (ConvertHardSigmoidToDPUVersion)"
        elif node.op_type in ("AveragePool", "GlobalAveragePool"):
            if node.op_type == "GlobalAveragePool":
                shape = shapes.get(node.input[0], ())
                kh, kw = (shape[2], shape[3]) if len(shape) == 4 else (0, 0)
            else:
                kh, kw = [*(attr_ints(node, "kernel_shape") or []), 0, 0][:2]
            factor = average_scale(kh, kw) if kh and kw else 1.0
            what = "average pooling as x k/2^n (ConvertAvgPoolToDPUVersion)"
        if factor == 1.0:
            continue
        final = node.output[0]
        raw = f"{final}__dpu_raw"
        node.output[0] = raw
        scale = f"{final}__dpu_scale"
        scales.append(numpy_helper.from_array(np.array(factor, dtype=np.float32), scale))
        nodes.append(helper.make_node("Mul", [raw, scale], [final], name=f"{node.name or final}__dpu_scale"))
        inner.add(raw)
        counts[what] = counts.get(what, 0) + 1
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(scales)
    applied = tuple(f"{what}: {n} node(s)" for what, n in counts.items())
    return Emulated(out, frozenset(inner), applied)


def align_fix_positions(
    model: onnx.ModelProto, dpu_outputs: Collection[str], fix: MutableMapping[str, int], rounds: int = 5
) -> tuple[str, ...]:
    """Give each DPU concatenation's inputs and output, and each DPU pool's input and output, the smallest
    of their fix positions (in place), until nothing changes; what was aligned, for the user."""
    scaled = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "Mul" and n.name.endswith("__dpu_scale")}
    groups: list[tuple[str, list[str]]] = []
    for node in model.graph.node:
        if not node.output or node.output[0] not in dpu_outputs or node.op_type not in ("Concat", *POOLS):
            continue
        output = scaled.get(node.output[0], node.output[0])
        tensors = [t for t in (*node.input, output) if t in fix]
        kind = "concatenation inputs and output share one fix position (AlignConcat)"
        if node.op_type in POOLS:
            kind = "pooling input and output share one fix position (AlignPool)"
        if len(tensors) > 1:
            groups.append((kind, tensors))
    changed: dict[str, set[str]] = {}
    for _ in range(rounds):
        moved = False
        for kind, tensors in groups:
            low = min(fix[t] for t in tensors)
            for t in tensors:
                if fix[t] != low:
                    fix[t] = low
                    moved = True
                    changed.setdefault(kind, set()).add(t)
        if not moved:
            break
    return tuple(f"{kind}: {len(names)} tensor(s) moved" for kind, names in changed.items())
