"""Latency and throughput of a partitioned model on a board: `Estimator.estimate(config, split)`.

  latency_ms  = DPU subgraphs (one core) + host work per DPU subgraph + CPU subgraphs (onnxruntime with
                one intra-op thread per Arm core) + the user's pre- and post-processing
  fps_single  = 1000 / latency_ms                                   (one application thread)
  fps_multi   = min(DPU cores in use x 1000 / DPU time per frame,   (per frame: one core's time with the DDR
                                                                     and the other shared paths shared, plus a
                                                                     runner round trip per subgraph)
                    Arm cores x 1000 / Arm time per frame,           (host, CPU subgraphs, pre/post; 1 thread each)
                    threads x 1000 / per-frame latency)              (frames in flight)
What depends neither on the DPU configuration nor on the split (the graph, cut points and CPU layer
times) is computed once per Estimator; placements are cached by the limits they depend on.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from explorer.dpu.partition import Cut, Partition, cut_points, partition
from explorer.dpu.support import CPU, DPU, Placement, limits_for, place_layers
from explorer.graph.layers import Layer, ModelGraph
from explorer.hardware.config import DpuConfig, DpuSpec, resolve
from explorer.hardware.database import Board, HwDatabase, load_database
from explorer.perf import runtime_problem
from explorer.perf.cpu import cpu_layer_ms, host_invocation_ms, runner_call_ms
from explorer.perf.dpu import DpuGeometry, LayerTime, dpu_layer_time, geometry, shared_frame_ms
from explorer.perf.params import LatencyParams, load_params
from explorer.perf.uncertainty import ErrorModel, Intervals, intervals, shipped_error_model
from explorer.recent import Recent

GEOMETRIES_KEPT = 128  # core geometries whose layer times a LayerTimes store remembers
TIMES_PER_GEOMETRY = 2048  # layer times one geometry keeps (the layers of its model's variants)


@dataclass(frozen=True)
class EstimateOptions:
    threads: int | None = None  # application threads for fps_multi (default: the board's Arm cores)
    pre_ms: float = 0.0  # per-frame pre-processing on the Arm, given by the user
    post_ms: float = 0.0
    cpu_precision: str = "fp32"  # precision of the CPU part: fp32 or int8
    runtime: str = "vart"  # what runs the model on the board: vart | pynq (see RUNTIMES)


@dataclass(frozen=True)
class SubgraphEstimate:
    index: int
    device: str
    layers: tuple[int, ...]
    time_ms: float  # DPU busy time (one core) or CPU time
    host_ms: float  # Arm time around a DPU subgraph run (runner call, quantise inputs, dequantise outputs)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    boundary_bytes: int  # int8 bytes of the subgraph's inputs and outputs


@dataclass(frozen=True)
class PerfEstimate:
    latency_ms: float
    fps_single: float
    fps_multi: float
    multi_bound: str
    threads: int
    dpu_ms: float
    cpu_ms: float
    host_ms: float
    pre_ms: float
    post_ms: float
    gop_per_frame: float
    dpu_gops: float
    dpu_utilization: float
    layers: tuple[LayerTime, ...]
    subgraphs: tuple[SubgraphEstimate, ...]
    partition: Partition
    source: str = "model"
    notes: tuple[str, ...] = field(default_factory=tuple)
    runtime: str = "vart"
    intervals: Intervals | None = None  # 80 % prediction intervals of latency_ms, fps_single, fps_multi

    @property
    def dpu_subgraphs(self) -> int:
        return len(self.partition.dpu_subgraphs)

    @property
    def runtime_problem(self) -> str:
        return runtime_problem(self.runtime, self.dpu_subgraphs)

    def summary(self) -> dict[str, Any]:
        return {
            "dpu_subgraphs": self.dpu_subgraphs,
            "runtime": self.runtime,
            "runtime_problem": self.runtime_problem,
            "latency_ms": self.latency_ms,
            "fps_single": self.fps_single,
            "fps_multi": self.fps_multi,
            "multi_bound": self.multi_bound,
            "threads": self.threads,
            "dpu_ms": self.dpu_ms,
            "cpu_ms": self.cpu_ms,
            "host_ms": self.host_ms,
            "gops": self.dpu_gops,
            "gop_per_frame": self.gop_per_frame,
            "dpu_utilization": self.dpu_utilization,
            "source": self.source,
            "intervals": self.intervals.to_dict() if self.intervals else None,
        }


class LayerTimes:
    """DPU layer times by core geometry (without the core count: a core's time alone does not depend on it),
    shared by the estimators of one model's pruned variants: a layer that a variant's pruning did not change
    keeps its time. A layer is known by its shape signature (index, kind, shapes, weights) and whether it is
    fused; at most GEOMETRIES_KEPT geometries of at most TIMES_PER_GEOMETRY layer times are kept."""

    def __init__(self) -> None:
        self._by_geometry: Recent[DpuGeometry, dict[tuple[int, bool], LayerTime]] = Recent(GEOMETRIES_KEPT)
        self._signatures: dict[tuple[Any, ...], int] = {}

    def signature(self, layer: Layer) -> int:
        """A number for what a layer's DPU time depends on, the same for the same layer of every variant."""
        key = (
            layer.index,
            layer.kind,
            layer.input_shapes,
            layer.output_shapes,
            layer.kernel,
            layer.stride,
            layer.in_channels,
            layer.out_channels,
            layer.macs,
            layer.weight_count,
        )
        return self._signatures.setdefault(key, len(self._signatures))

    def of(self, geo: DpuGeometry) -> dict[tuple[int, bool], LayerTime]:
        """The layer times known for one core of `geo`, by (signature, fused)."""
        found = self._by_geometry.get_or_make(dataclasses.replace(geo, cores=0), dict)
        if len(found) >= TIMES_PER_GEOMETRY:
            found.clear()
        return found


class Estimator:
    """Estimates one model on one board for any DPU configuration and split."""

    def __init__(
        self,
        graph: ModelGraph,
        board: Board,
        params: LatencyParams | None = None,
        db: HwDatabase | None = None,
        errors: ErrorModel | None = None,
        layer_times: LayerTimes | None = None,
    ):
        """`layer_times`: a store shared with the estimators of the same model's other pruned variants."""
        self.graph = graph
        self.board = board
        self.params = params or load_params()
        self.db = db or load_database()
        self.errors = errors or shipped_error_model(board)  # the spread of the 80 % intervals
        self.cuts: list[Cut] = cut_points(graph)
        self._placements: dict[tuple[Any, ...], tuple[Placement, ...]] = {}
        self._partitions: dict[tuple[Any, ...], Partition] = {}
        self._cpu_ms: dict[tuple[int, str], list[float]] = {}
        self._layer_times = layer_times or LayerTimes()
        self._signatures = [self._layer_times.signature(layer) for layer in graph.layers]

    def with_params(self, params: LatencyParams) -> Estimator:
        """The same model and board under other latency parameters, sharing the placements and partitions
        (they do not depend on the parameters); calibration evaluates many parameter sets this way."""
        other = copy.copy(self)
        other.params, other._cpu_ms, other._layer_times = params, {}, LayerTimes()
        other._signatures = [other._layer_times.signature(layer) for layer in self.graph.layers]
        return other

    def _key(self, spec: DpuSpec, split: int | None) -> tuple[Any, ...]:
        return (limits_for(spec), split)

    def placements(self, config: DpuConfig, split: int | None = None) -> tuple[Placement, ...]:
        return self._placed(resolve(config, self.db), split)

    def placed(self, spec: DpuSpec, split: int | None = None) -> tuple[Placement, ...]:
        """`placements` of a configuration already resolved."""
        return self._placed(spec, split)

    def _placed(self, spec: DpuSpec, split: int | None) -> tuple[Placement, ...]:
        key = self._key(spec, split)
        if key not in self._placements:
            self._placements[key] = tuple(place_layers(self.graph, spec, split))
        return self._placements[key]

    def partition(self, config: DpuConfig, split: int | None = None) -> Partition:
        return self._partition(resolve(config, self.db), split)

    def _partition(self, spec: DpuSpec, split: int | None) -> Partition:
        key = self._key(spec, split)
        if key not in self._partitions:
            self._partitions[key] = partition(self.graph, self._placed(spec, split), split)
        return self._partitions[key]

    def cpu_times(self, threads: int, precision: str) -> list[float]:
        key = (threads, precision)
        if key not in self._cpu_ms:
            self._cpu_ms[key] = [
                cpu_layer_ms(layer, self.board.cpu, self.params, threads, precision) for layer in self.graph.layers
            ]
        return self._cpu_ms[key]

    def estimate(self, config: DpuConfig, split: int | None = None, options: EstimateOptions | None = None) -> PerfEstimate:
        opts = options or EstimateOptions()
        if split is not None and not 0 <= split <= len(self.graph.layers):
            raise ValueError(f"split {split} outside 0..{len(self.graph.layers)}")
        if opts.cpu_precision not in ("fp32", "int8"):
            raise ValueError(f"cpu precision must be fp32 or int8, got {opts.cpu_precision!r}")
        arm = self.board.cpu
        threads = opts.threads or arm.cores
        spec = resolve(config, self.db)
        part = self._partition(spec, split)
        geo = geometry(spec, self.board, self.params)
        known = self._layer_times.of(geo)
        active = max(1, min(threads, config.cores))
        cpu_lat = self.cpu_times(arm.cores, opts.cpu_precision)
        cpu_one = self.cpu_times(1, opts.cpu_precision)
        layers: list[LayerTime] = []
        subs: list[SubgraphEstimate] = []
        dpu_ms = cpu_ms = cpu_one_ms = host_ms = 0.0
        dpu_ops = 0
        for sub in part.subgraphs:
            if sub.device == DPU:
                times = []
                for i in sub.layers:
                    key = (self._signatures[i], part.placements[i].reason.startswith("fused"))
                    if key not in known:
                        known[key] = dpu_layer_time(self.graph.layers[i], part.placements[i], geo)
                    times.append(known[key])
                layers += times
                t = sum(x.time_ms for x in times)
                in_el = sum(math.prod(self.graph.shapes[x]) for x in sub.inputs)
                out_el = sum(math.prod(self.graph.shapes[x]) for x in sub.outputs)
                h = host_invocation_ms(in_el, out_el, arm, self.params)
                dpu_ms += t
                host_ms += h
                dpu_ops += sum(x.ops for x in times)
                subs.append(SubgraphEstimate(sub.index, DPU, sub.layers, t, h, sub.inputs, sub.outputs, in_el + out_el))
            else:
                t = sum(cpu_lat[i] for i in sub.layers)
                cpu_ms += t
                cpu_one_ms += sum(cpu_one[i] for i in sub.layers)
                layers += [LayerTime(i, CPU, cpu_lat[i], cpu_lat[i], 0.0, "cpu", self.graph.layers[i].ops, 0) for i in sub.layers]
                boundary = sum(math.prod(self.graph.shapes[x]) for x in (*sub.inputs, *sub.outputs))
                subs.append(SubgraphEstimate(sub.index, CPU, sub.layers, t, 0.0, sub.inputs, sub.outputs, boundary))
        layers.sort(key=lambda x: x.layer)
        # Several cores running frames at once share the DDR (mean-field contention, per layer).
        dpu_frame_ms = shared_frame_ms([x for x in layers if x.device == DPU], geo, active)
        # and each subgraph run holds its core for one runner round trip (the next task starts after it)
        hold_ms = len(part.dpu_subgraphs) * runner_call_ms(arm, self.params)
        dpu_core_ms = dpu_frame_ms + hold_ms if dpu_frame_ms else 0.0
        latency = dpu_ms + host_ms + cpu_ms + opts.pre_ms + opts.post_ms
        arm_work = host_ms + cpu_one_ms + opts.pre_ms + opts.post_ms
        caps = {
            "dpu": active * 1000.0 / dpu_core_ms if dpu_core_ms > 0 else math.inf,
            "arm": min(threads, arm.cores) * 1000.0 / arm_work if arm_work > 0 else math.inf,
            "threads": threads * 1000.0 / (dpu_frame_ms + arm_work) if dpu_frame_ms + arm_work > 0 else math.inf,
        }
        bound = min(caps, key=lambda k: caps[k])
        fps_single = 1000.0 / latency if latency > 0 else math.inf
        fps_multi = fps_single if threads == 1 else caps[bound]
        peak_per_core = spec.peak_ops_per_cycle * config.clock_mhz * 1e6
        dpu_gops = dpu_ops / (dpu_ms * 1e6) if dpu_ms > 0 else 0.0
        return PerfEstimate(
            latency_ms=latency,
            fps_single=fps_single,
            fps_multi=fps_multi,
            multi_bound=bound if threads > 1 else "single",
            threads=threads,
            dpu_ms=dpu_ms,
            cpu_ms=cpu_ms,
            host_ms=host_ms,
            pre_ms=opts.pre_ms,
            post_ms=opts.post_ms,
            gop_per_frame=self.graph.total_ops / 1e9,
            dpu_gops=dpu_gops,
            dpu_utilization=dpu_gops * 1e9 / peak_per_core,
            layers=tuple(layers),
            subgraphs=tuple(subs),
            partition=part,
            runtime=opts.runtime,
            intervals=intervals(
                self.errors,
                config.arch,
                dpu_ms=dpu_ms,
                host_ms=host_ms,
                cpu_ms=cpu_ms,
                pre_post_ms=opts.pre_ms + opts.post_ms,
                latency_ms=latency,
                fps_single=fps_single,
                fps_multi=fps_multi,
                bound=bound if threads > 1 else "single",
                dpu_unfitted_ms=sum(
                    x.time_ms
                    for x in layers
                    if x.device == DPU and self.graph.layers[x.layer].kind not in self.errors.kinds_fitted
                ),
            ),
        )
