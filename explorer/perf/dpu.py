"""DPU time per layer from the architecture: parallelism, padding waste, on-chip capacity, bandwidth.

For each layer on the DPU:
  compute cycles = output rows x ceil(width / pixel parallelism) x ceil(out channels / OCP)
                   x kernel taps x ceil(in channels / ICP)         (convolution engine)
  with channel augmentation, a few-channel input packs kernel columns into the channel lanes;
  depthwise and pooling use the ALU / pooling engine (ALU_PP pixels x ICP channels per cycle).
  bytes = inputs + outputs + weights, plus reloads when the weights do not fit the weight banks
  and the input does not fit the image banks (the cheaper of the two reload orders). The engines move
  feature maps in bank rows of ICP channels a pixel (`row_bytes`): 28 channels move as 32 on ICP 16.
  A core moves `traffic_share` of the bytes so counted: PG338 Table 14's measured per-layer bandwidths
  (docs/latency_model.md; bench/io_bandwidth.py).
  memory time = max(bytes read / port bandwidth, rows read / load engines, rows written / write
                    bandwidth, (bytes read + rows written) / DDR)
  time = max(compute, memory) + overlap_loss x min(compute, memory) + a fixed cost per layer.
The load engines read while the save engine writes, over the AXI read and write channels, which are
independent; the DDR controller serves both. A core reads through its AXI data ports (bytes) and its
2 load engines (one ICP-byte row each per cycle), at the DPU clock x port efficiency; write bandwidth =
the AXI data ports per cycle x port efficiency; DDR = peak x DDR efficiency, shared by reads and writes.
Activations fused into their producer, and shape-only layers folded into an FC, take no time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from explorer.dpu.support import Placement
from explorer.graph.layers import Layer
from explorer.hardware.config import DpuSpec
from explorer.hardware.database import Board
from explorer.perf.params import LatencyParams, load_params

FREE_KINDS = {"relu", "relu6", "leakyrelu", "flatten", "reshape", "concat"}


@dataclass(frozen=True)
class DpuGeometry:
    """Everything about the configuration and board that layer timing needs (computed once)."""

    pp: int
    icp: int
    ocp: int
    alu_pp: int
    clock_hz: float
    channel_augmentation: bool
    img_capacity_bytes: int
    wgt_capacity_bytes: int
    read_bytes_per_s: float  # the AXI data ports, reading
    load_bytes_per_s: float  # the load engines, in bank rows of ICP bytes
    write_bytes_per_s: float
    ddr_bytes_per_s: float
    cores: int
    layer_overhead_s: float
    softmax_elements_per_s: float
    overlap_loss: float = 0.0
    core_sharing: float = 0.0
    traffic_share: float = 1.0  # bytes the DPU moves per byte counted (`_traffic`)


def geometry(spec: DpuSpec, board: Board, params: LatencyParams | None = None) -> DpuGeometry:
    params = params or load_params()
    config, arch = spec.config, spec.arch
    bank_bytes = spec.tables.bank_depth * arch.icp  # one bank: 8*ICP bits x 2048
    clock = config.clock_mhz * 1e6
    width = params.port_width_bits[board.family] // 8
    return DpuGeometry(
        pp=arch.pp,
        icp=arch.icp,
        ocp=arch.ocp,
        alu_pp=spec.alu_parallel,
        clock_hz=clock,
        channel_augmentation=config.channel_augmentation,
        img_capacity_bytes=spec.banks.img * bank_bytes,
        wgt_capacity_bytes=arch.ocp * bank_bytes,  # one weight bank per OCP lane
        # A core reads through its AXI data ports and through LOAD_PARALLEL (2) load engines that each
        # fill one 8*ICP-bit bank row per cycle (INFERRED from the bank width and LOAD_PARALLEL = 2,
        # docs/hardware.md §2.2): the ports move bytes, the engines move rows (`row_bytes`).
        read_bytes_per_s=params.data_ports_per_core * width * clock * params.port_efficiency,
        load_bytes_per_s=params.load_parallel * arch.icp * clock * params.port_efficiency,
        # The save engine's own width (SAVE_PARALLEL) is not published: writes are limited by the ports.
        write_bytes_per_s=params.data_ports_per_core * width * clock * params.port_efficiency,
        ddr_bytes_per_s=board.ddr.peak_gbps * 1e9 * params.ddr_efficiency,
        cores=config.cores,
        layer_overhead_s=params.layer_overhead_cycles / clock,
        softmax_elements_per_s=params.softmax_elements_per_cycle * clock,
        overlap_loss=params.overlap_loss,
        core_sharing=params.core_sharing,
        traffic_share=params.traffic_share,
    )


@dataclass(frozen=True)
class LayerTime:
    layer: int
    device: str
    time_ms: float
    compute_ms: float
    memory_ms: float
    bound: str  # compute | memory | overhead | fused | cpu
    ops: int
    ddr_bytes: int
    port_ms: float = 0.0  # memory time through this core's own ports alone (what DDR sharing cannot change)

    @property
    def gops(self) -> float:
        return self.ops / (self.time_ms * 1e6) if self.time_ms > 0 else 0.0


def _conv_cycles(layer: Layer, g: DpuGeometry) -> int:
    oh, ow = layer.output_shapes[0][2], layer.output_shapes[0][3]
    kh, kw = layer.kernel
    ic, oc = layer.in_channels, layer.out_channels
    if layer.kind == "deconv":  # stride-s deconvolution = s*s convolutions with kernel ceil(k/s)
        kh, kw = math.ceil(kh / layer.stride[0]), math.ceil(kw / layer.stride[1])
    # with channel augmentation, kernel columns are packed into the input-channel lanes
    augmented = g.channel_augmentation and 2 * ic <= g.icp
    taps = kh * math.ceil(kw * ic / g.icp) if augmented else kh * kw * math.ceil(ic / g.icp)
    return oh * math.ceil(ow / g.pp) * math.ceil(oc / g.ocp) * taps


def _alu_cycles(layer: Layer, g: DpuGeometry) -> int:
    _, c, oh, ow = layer.output_shapes[0]
    kh, kw = layer.kernel
    return oh * math.ceil(ow / g.alu_pp) * math.ceil(c / g.icp) * kh * kw


def _eltwise_cycles(layer: Layer, g: DpuGeometry) -> int:
    shape = layer.output_shapes[0]
    spatial = math.prod(shape[2:]) if len(shape) > 2 else 1
    channels = shape[1] if len(shape) > 1 else 1
    return spatial * math.ceil(channels / g.icp) * len(layer.inputs)


def row_bytes(shapes: Sequence[tuple[int, ...]], width: int) -> int:
    """Bytes of feature maps as the load and save engines move them: each pixel's channels in bank rows of
    `width` (ICP) channels, so 28 channels move as 32 on a 16-lane DPU, and 3 as 16."""
    return sum(s[0] * math.ceil(s[1] / width) * width * math.prod(s[2:]) if len(s) >= 2 else math.prod(s) for s in shapes)


@dataclass(frozen=True)
class Traffic:
    """One layer's data movement: bytes read over the ports, the same in the load engines' bank rows, and
    the bytes written (the save engine writes whole rows: a partial one still takes its bus beat)."""

    read: int
    read_rows: int
    written: int

    @property
    def ddr(self) -> int:
        return self.read + self.written


def _traffic(layer: Layer, g: DpuGeometry) -> Traffic:
    """What one layer moves, with reloads when neither the weights nor the input fit on chip (the cheaper of
    the two reload orders, chosen on bytes)."""
    i, w = layer.input_bytes, layer.weight_bytes
    rows = row_bytes(layer.input_shapes, g.icp)
    written = row_bytes(layer.output_shapes, g.icp)
    if w <= g.wgt_capacity_bytes or rows <= g.img_capacity_bytes:
        read, read_rows = i + w, rows + w
    else:
        input_passes, weight_passes = math.ceil(w / g.wgt_capacity_bytes), math.ceil(rows / g.img_capacity_bytes)
        if w + i * input_passes <= i + w * weight_passes:  # the input is read again for each slice of the weights
            read, read_rows = w + i * input_passes, w + rows * input_passes
        else:
            read, read_rows = i + w * weight_passes, rows + w * weight_passes
    share = g.traffic_share  # what the DPU moves of what is counted here (PG338 Table 14, docs/latency_model.md)
    return Traffic(round(read * share), round(read_rows * share), round(written * share))


def dpu_layer_time(layer: Layer, placement: Placement, g: DpuGeometry) -> LayerTime:
    """Time of one layer on one core running alone (sharing between cores is applied per frame)."""
    if layer.kind in FREE_KINDS or placement.reason.startswith("fused"):
        return LayerTime(layer.index, "DPU", 0.0, 0.0, 0.0, "fused", 0, 0)
    kind = layer.kind
    if kind in ("conv", "deconv", "fc"):
        if kind == "fc":
            cycles = math.ceil(layer.out_channels / g.ocp) * math.ceil(layer.in_channels / g.icp)
        else:
            cycles = _conv_cycles(layer, g)
    elif kind in ("dwconv", "maxpool", "avgpool", "global_avgpool", "global_maxpool"):
        cycles = _alu_cycles(layer, g)
    elif kind in ("add", "mul"):
        cycles = _eltwise_cycles(layer, g)
    elif kind == "softmax":
        cycles = math.ceil(layer.output_bytes / g.softmax_elements_per_s * g.clock_hz)
    else:  # upsample, reorg: data movement through the load/save engines
        cycles = 0
    compute_s = cycles / g.clock_hz
    moved = _traffic(layer, g)
    read_s = max(moved.read / g.read_bytes_per_s, moved.read_rows / g.load_bytes_per_s)
    port_s = max(read_s, moved.written / g.write_bytes_per_s)
    memory_s = max(port_s, moved.ddr / g.ddr_bytes_per_s)
    busy = max(compute_s, memory_s) + g.overlap_loss * min(compute_s, memory_s)
    total = busy + g.layer_overhead_s
    bound = "overhead" if g.layer_overhead_s > busy else ("compute" if compute_s >= memory_s else "memory")
    return LayerTime(layer.index, "DPU", total * 1e3, compute_s * 1e3, memory_s * 1e3, bound, layer.ops, moved.ddr, port_s * 1e3)


def shared_frame_ms(times: Sequence[LayerTime], g: DpuGeometry, active: int) -> float:
    """One core's time per frame while `active` cores run frames at once and share the DDR.

    Mean field: while one core runs a layer, the other cores draw their average bandwidth, (active - 1) x
    bytes per frame / frame time, so this layer sees what is left of the DDR (never less than a fair share,
    DDR / active); its memory time is bytes / that, or its own ports' time if longer. The frame time T and the
    others' draw depend on each other: T = F(T), with F falling as T grows (slower cores draw less), so
    the fixed point is unique and bisection finds it. A frame that is memory-bound in every layer gets
    T = active x bytes / DDR, the whole-frame roofline; a compute-bound one is slowed only in its
    memory-bound layers (feature-map heavy early layers, 1x1 convolutions, pooling), which the whole-frame
    roofline missed on three-core boards. Besides the DDR's bandwidth, busy cores slow each other on the paths
    they share (interconnect, DDR arbitration, instruction fetch): each core's compute, port transfers and
    per-layer cost take 1 + core_sharing x (active - 1) times as long, while the DDR-bound part keeps its
    roofline.
    """
    busy = [t for t in times if t.time_ms > 0]
    alone = sum(t.time_ms for t in busy)
    if active <= 1 or not busy:
        return alone
    overhead_ms = g.layer_overhead_s * 1e3
    compute = np.array([t.compute_ms for t in busy])
    ports = np.array([t.port_ms for t in busy])
    moved = np.array([float(t.ddr_bytes) for t in busy])
    total_bytes = float(moved.sum())
    ddr_per_ms = g.ddr_bytes_per_s / 1e3
    sharing = 1.0 + g.core_sharing * (active - 1)

    def frame_at(left: float) -> float:  # the frame with `left` bytes/ms of the DDR for this core
        # the shared paths lengthen all a core does (its compute, its ports' transfers, its per-layer cost);
        # the DDR's bandwidth bounds its transfers besides, so a DDR-bound frame keeps the roofline
        memory = np.maximum(ports * sharing, moved / left)
        work = compute * sharing
        exposed = np.maximum(work, memory) + g.overlap_loss * np.minimum(work, memory)
        return float(exposed.sum()) + overhead_ms * sharing * len(busy)

    def frame(t_ms: float) -> float:
        return frame_at(max(ddr_per_ms - (active - 1) * total_bytes / t_ms, ddr_per_ms / active))

    # F(T) lies between the alone time (T -> infinity leaves the whole DDR) and the fair-share time
    low, high = alone, frame_at(ddr_per_ms / active)
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if frame(mid) > mid else (low, mid)
        if high - low <= 1e-9 * high:
            break
    return max(alone, high)
