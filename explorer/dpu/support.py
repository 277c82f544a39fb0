"""Which nodes the DPU runs, following PG338 Table 1 (seed 004_...) and docs/hardware.md.

`place_layers` walks the layer table in topological order and returns, for every layer, the device
(DPU or CPU) and, for CPU layers, the reason. Activations are fused into the DPU layer that produces
their input (PG338: ReLU/ReLU6/LeakyReLU after convolution, ReLU/ReLU6 after depthwise convolution).
A split index `k` (see partition.py) keeps every layer at or after position k on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from explorer.graph.layers import Layer, ModelGraph, consumer_layers, producer_layers
from explorer.hardware.config import DpuSpec

DPU, CPU = "DPU", "CPU"

# DPU layers whose output an activation can be fused into, and the activations each accepts.
_FUSABLE = {"conv": "conv", "deconv": "conv", "fc": "conv", "add": "eltwise", "dwconv": "dw"}
_SHAPE_ONLY = {"flatten", "reshape"}


@dataclass(frozen=True)
class Placement:
    device: str
    reason: str = ""  # why the layer runs on the CPU; for DPU layers a short note (e.g. "fused into conv_3")


@dataclass(frozen=True)
class DpuLimits:
    """The configuration-dependent limits of PG338 Table 1."""

    channel_parallel: int
    pp: int
    bank_depth: int
    depthwise: bool
    avg_pool: bool
    elew_mult: bool
    softmax: bool
    conv_leakyrelu: bool
    alu_leakyrelu: bool
    hard_activations: bool = False  # HardSigmoid/HardSwish fused into a convolution (IP 4.x, hw/dpu_ip.yaml)
    alu_hard_activations: bool = False  # ... and into a depthwise convolution (the ISA1 ALU's hsigmoid)
    pool_kernel_max: int = 8  # average-pool kernel: 2-8 in PG338 Table 1; 1-256 on the ISA1 ALU

    @property
    def max_channels(self) -> int:
        return 256 * self.channel_parallel


def limits_for(spec: DpuSpec) -> DpuLimits:
    config, arch, v4 = spec.config, spec.arch, spec.ip.is_v4
    return DpuLimits(
        channel_parallel=arch.icp,
        pp=arch.pp,
        bank_depth=spec.tables.bank_depth,
        depthwise=v4 or config.depthwise,
        avg_pool=v4 or config.avg_pool,
        elew_mult=v4 or config.elew_mult,
        softmax=config.softmax,
        conv_leakyrelu=config.relu_type == "relu_leakyrelu_relu6",
        alu_leakyrelu=v4 and config.alu_leakyrelu,
        hard_activations=spec.ip.conv_hard_activations,
        alu_hard_activations=spec.ip.alu_hard_activations,
        pool_kernel_max=spec.ip.alu_kernel_max,
    )


def _window_problem(layer: Layer, k_max: int, s_max: int, what: str) -> str:
    kh, kw = layer.kernel
    sh, sw = layer.stride
    t, left, b, r = layer.pads
    if not (1 <= kh <= k_max and 1 <= kw <= k_max):
        return f"{what} kernel {kh}x{kw} outside 1-{k_max}"
    if not (1 <= sh <= s_max and 1 <= sw <= s_max):
        return f"{what} stride {sh}x{sw} outside 1-{s_max}"
    if max(t, b) > kh - 1 or max(left, r) > kw - 1:
        return f"{what} padding {layer.pads} exceeds kernel-1"
    return ""


def _conv_problem(layer: Layer, lim: DpuLimits, what: str) -> str:
    problem = _window_problem(layer, 16, 8, what)
    if problem:
        return problem
    if layer.in_channels > lim.max_channels or layer.out_channels > lim.max_channels:
        return f"{what} channels {layer.in_channels}->{layer.out_channels} exceed 256*channel_parallel = {lim.max_channels}"
    dh, dw = layer.dilation
    if max(dh, dw) > 1:
        if layer.stride != (1, 1):
            return f"dilated {what} needs stride 1, got {layer.stride}"
        if max(dh, dw) * layer.in_channels > lim.max_channels:
            return f"dilation*input_channel = {max(dh, dw) * layer.in_channels} exceeds {lim.max_channels}"
    kh, kw = layer.kernel
    channels = 1 if layer.kind == "dwconv" else layer.in_channels
    if kh * kw * math.ceil(channels / lim.channel_parallel) > lim.bank_depth // 2:
        return (
            f"kernel_w*kernel_h*ceil(input_channel/channel_parallel) = {kh * kw * math.ceil(channels / lim.channel_parallel)} "
            f"exceeds bank_depth/2 = {lim.bank_depth // 2}"
        )
    return ""


def _same_shapes(layer: Layer) -> bool:
    return len(set(layer.input_shapes)) == 1


@dataclass(frozen=True)
class _Neighbours:
    """Where each tensor comes from and goes to, for the rules that look at a layer's neighbours."""

    graph: ModelGraph
    made: dict[str, int]
    users: dict[str, list[int]]


def _channels(layer: Layer, lim: DpuLimits, what: str) -> str:
    return "" if layer.out_channels <= lim.max_channels else f"{what} channels exceed {lim.max_channels}"


def _dwconv_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    if not lim.depthwise:
        return "depthwise convolution is disabled in this DPU configuration"
    if layer.params.get("multiplier", 1) != 1:
        return f"depthwise multiplier {layer.params['multiplier']} (only 1 is supported)"
    return _conv_problem(layer, lim, "depthwise convolution")


def _deconv_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    if layer.groups != 1:
        return f"grouped deconvolution (groups={layer.groups}) is not supported"
    problem = _window_problem(layer, 16, 10**9, "deconvolution")
    if problem:
        return problem
    if layer.stride[1] * layer.out_channels > lim.max_channels:
        return f"deconvolution stride_w*output_channel = {layer.stride[1] * layer.out_channels} exceeds {lim.max_channels}"
    if layer.in_channels > lim.max_channels or layer.out_channels > lim.max_channels:
        return f"deconvolution channels exceed {lim.max_channels}"
    return ""


def _fc_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    if layer.in_channels > 2048 * lim.channel_parallel:
        return f"fully connected input {layer.in_channels} exceeds 2048*channel_parallel = {2048 * lim.channel_parallel}"
    src = n.made.get(layer.inputs[0]) if layer.inputs else None
    if src is not None and n.graph.layers[src].kind in _SHAPE_ONLY:
        shape = n.graph.layers[src].input_shapes[0]
        if len(shape) == 4 and (shape[2] > 16 or shape[3] > 16):
            return (
                f"Flatten+FC becomes a global convolution with kernel {shape[2]}x{shape[3]}, beyond the 16x16 "
                "convolution kernel limit (PG338 Table 1 note 2)"
            )
    return ""


def _maxpool_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    return "" if not _window_problem(layer, 8, 8, "max pooling") else _max_reduce_problem(layer, lim)


def _avgpool_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    if not lim.avg_pool:
        return "average pooling is disabled in this DPU configuration"
    kh, kw = layer.kernel
    top = lim.pool_kernel_max
    if layer.kind == "global_avgpool" and max(kh, kw) > top and max(*split_pool(kh), *split_pool(kw)) <= top:
        return ""  # two pools within the limit: an exact rewrite (AMD Quark `SplitLargeKernelPool`)
    if kh != kw or not 1 <= kh <= top:
        where = "PG338 Table 1 (IP 3.x)" if top <= 8 else "the IP 4.x ALU"
        return f"average pooling kernel {kh}x{kw}: only square 2x2 to {top}x{top} is supported by {where}"
    return _window_problem(layer, top, 8 if top <= 8 else top, "average pooling") if layer.kind == "avgpool" else ""


def split_pool(side: int) -> tuple[int, int]:
    """A global pool's side as two factors, the first the largest at most its square root (AMD Quark
    `SplitLargeKernelPool`: an average pool of kernel and stride k1, then a global pool over the k2 x k2 rest)."""
    first = math.isqrt(side)
    while first > 1 and side % first:
        first -= 1
    return (first, side // first) if first > 1 else (1, side)


def _add_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    if not 1 <= len(layer.inputs) <= 4:
        return f"element-wise sum of {len(layer.inputs)} feature maps (1-4 supported)"
    if not _same_shapes(layer):
        return f"element-wise sum with broadcasting {[list(s) for s in layer.input_shapes]}"
    return _channels(layer, lim, "element-wise sum")


def _mul_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    if not lim.elew_mult:
        return "element-wise multiply is disabled in this DPU configuration"
    if len(layer.inputs) != 2 or not _same_shapes(layer):
        return f"element-wise multiply needs two feature maps of one shape, got {[list(s) for s in layer.input_shapes]}"
    return _channels(layer, lim, "element-wise multiply")


def _concat_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    rank = len(layer.output_shapes[0])
    if layer.params.get("axis") not in (1, 1 - rank):
        return f"concatenation along axis {layer.params.get('axis')} (only channels)"
    return _channels(layer, lim, "concatenation output")


def _reorg_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    block = int(layer.params["blocksize"])
    channels = layer.in_channels if layer.params["direction"] == "space_to_depth" else layer.out_channels
    if block * block * channels > lim.max_channels:
        return f"reorg stride*stride*channels = {block * block * channels} exceeds {lim.max_channels}"
    return ""


def _upsample_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    if layer.params.get("mode") != "nearest":
        return f"{layer.params.get('mode')} resize (the DPU upsamples by nearest neighbour only)"
    (h, w), (oh, ow) = layer.input_shapes[0][2:4], layer.output_shapes[0][2:4]
    return f"non-integer upsampling {h}x{w} -> {oh}x{ow}" if oh % h or ow % w else ""


def _shape_only_problem(layer: Layer, lim: DpuLimits, n: _Neighbours) -> str:
    out = layer.output_shapes[0]
    nxt = [n.graph.layers[i] for t in layer.outputs for i in n.users.get(t, [])]
    if len(out) == 2 and nxt and all(c.kind == "fc" for c in nxt):
        return ""  # Flatten/Reshape before FC: the compiler folds it into the FC
    shape = layer.input_shapes[0] if layer.input_shapes else ()
    if len(shape) == 4 and shape[2] == shape[3] == 1:
        return ""  # squeezing 1x1 spatial dims moves no data
    return f"{layer.op_type} that changes the data layout runs on the CPU"


# One rule per layer kind (PG338 Table 1 and its notes); a kind without a rule runs on the CPU.
_RULES: dict[str, Callable[[Layer, DpuLimits, _Neighbours], str]] = {
    "conv": lambda layer, lim, n: _conv_problem(layer, lim, "convolution"),
    "dwconv": _dwconv_problem,
    "gconv": lambda layer, lim, n: f"grouped convolution (groups={layer.groups}) is not in PG338 Table 1",
    "deconv": _deconv_problem,
    "fc": _fc_problem,
    "maxpool": _maxpool_problem,
    "global_maxpool": lambda layer, lim, n: _max_reduce_problem(layer, lim),
    "avgpool": _avgpool_problem,
    "global_avgpool": _avgpool_problem,
    "add": _add_problem,
    "mul": _mul_problem,
    "concat": _concat_problem,
    "reorg": _reorg_problem,
    "upsample": _upsample_problem,
    "softmax": lambda layer, lim, n: (
        "" if lim.softmax else "softmax needs the softmax core (softmax: true, Zynq UltraScale+ only)"
    ),
    **dict.fromkeys(_SHAPE_ONLY, _shape_only_problem),
    "batchnorm": lambda layer, lim, n: "BatchNormalization that is not folded into a preceding convolution",
    "conv_dynamic": lambda layer, lim, n: f"{layer.op_type} with non-constant weights",
    "matmul": lambda layer, lim, n: (
        f"{layer.op_type} with constant weights on a rank-{layer.params.get('input_rank')} input (the DPU's fully "
        "connected layer takes a flattened (N, features) input)"
        if layer.params.get("constant_weights")
        else f"{layer.op_type} with non-constant weights"
    ),
    "add_const": lambda layer, lim, n: f"{layer.op_type} with a constant operand (not a feature-map operation)",
    "mul_const": lambda layer, lim, n: f"{layer.op_type} with a constant operand (not a feature-map operation)",
}


def _layer_problem(layer: Layer, lim: DpuLimits, graph: ModelGraph, made: dict[str, int], users: dict[str, list[int]]) -> str:
    """Why `layer` cannot run on the DPU ("" when it can). Activations are handled by the caller."""
    rule = _RULES.get(layer.kind)
    if rule is None:
        return f"operator {layer.op_type} is not supported by the DPU (PG338 Table 1)"
    return rule(layer, lim, _Neighbours(graph, made, users))


def _max_reduce_problem(layer: Layer, lim: DpuLimits) -> str:
    kh, kw = layer.kernel
    if layer.stride != layer.kernel or any(layer.pads):
        return f"max pooling kernel {kh}x{kw} stride {layer.stride}: beyond 8x8 only max-reduce (stride = kernel, no pad) exists"
    if not (1 <= kh <= 256 and 1 <= kw <= 256):
        return f"max-reduce kernel {kh}x{kw} outside 1-256"
    if kh * kw * layer.in_channels > lim.pp * lim.channel_parallel * lim.bank_depth:
        return "max-reduce kernel_w*kernel_h*input_channel exceeds PP*CP*bank_depth"
    return ""


def _activation_problem(
    layer: Layer, lim: DpuLimits, graph: ModelGraph, made: dict[str, int], placed: list[Placement], uses: dict[str, int]
) -> tuple[str, str]:
    """(problem, note) for an activation: it must follow a DPU layer it can be fused into."""
    kind = layer.kind
    hard = kind in ("hardsigmoid", "hardswish")
    if kind not in ("relu", "relu6", "leakyrelu") and not (hard and lim.hard_activations):
        if hard:
            return f"{layer.op_type} runs on the DPU from IP 4.0 (Vitis AI 2.5) on; this design point is IP 3.x", ""
        return (
            f"activation {layer.op_type} is not supported by the DPU (ReLU, ReLU6, LeakyReLU; HardSigmoid, HardSwish on IP 4.x)",
            "",
        )
    src = made.get(layer.inputs[0]) if layer.inputs else None
    if src is None:
        return "activation on a graph input (nothing to fuse it into)", ""
    producer = graph.layers[src]
    if placed[src].device != DPU:
        return f"activation after {producer.name}, which runs on the CPU", ""
    engine = _FUSABLE.get(producer.kind)
    if engine is None:
        return f"activation after {producer.kind} {producer.name} cannot be fused", ""
    if uses.get(layer.inputs[0], 0) != 1:
        return f"the pre-activation output of {producer.name} is used elsewhere, so the activation cannot be fused", ""
    if kind == "leakyrelu":
        if abs(float(layer.params.get("alpha", 0)) - 0.1) > 1e-3:
            return f"LeakyReLU slope {layer.params.get('alpha')} (the DPU fixes it to 0.1)", ""
        if engine == "dw" and not lim.alu_leakyrelu:
            return "LeakyReLU after depthwise convolution needs alu_leakyrelu (IP 4.x)", ""
        if engine == "eltwise":
            return "LeakyReLU after element-wise sum is not supported", ""
        if not lim.conv_leakyrelu:
            return "LeakyReLU needs relu_type relu_leakyrelu_relu6", ""
    elif hard and not (engine == "conv" or (engine == "dw" and lim.alu_hard_activations)):
        return f"{layer.op_type} is fused only into a convolution or fully connected layer, not after {producer.kind}", ""
    elif engine == "eltwise" and kind != "relu":
        return "only ReLU can follow an element-wise sum on the DPU", ""
    return "", f"fused into {producer.name}"


def place_layers(graph: ModelGraph, spec: DpuSpec, split: int | None = None) -> list[Placement]:
    """Device and reason for every layer. `split=k` keeps layers k.. on the CPU."""
    lim = limits_for(spec)
    made = producer_layers(graph)
    users = consumer_layers(graph)
    outputs = set(graph.graph_outputs)
    uses = {t: len(consumers) + (t in outputs) for t, consumers in users.items()}  # readers of each tensor
    placed: list[Placement] = []
    for layer in graph.layers:
        if split is not None and layer.index >= split:
            placed.append(Placement(CPU, f"after the split point {split}"))
            continue
        if layer.kind in ("relu", "relu6", "leakyrelu", "prelu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "clip"):
            problem, note = _activation_problem(layer, lim, graph, made, placed, uses)
        else:
            problem, note = _layer_problem(layer, lim, graph, made, users), ""
        placed.append(Placement(CPU, problem) if problem else Placement(DPU, note))
    return placed
