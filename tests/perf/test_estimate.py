"""The latency model behaves physically, and meets its calibration target."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from explorer.dpu.support import DPU, Placement
from explorer.graph.layers import ModelGraph
from explorer.graph.prepare import graph_from_model
from explorer.hardware.config import DpuConfig, parse_dpu_config, resolve
from explorer.hardware.database import load_database
from explorer.perf.cpu import cpu_layer_ms, runner_call_ms
from explorer.perf.dpu import LayerTime, dpu_layer_time, geometry, row_bytes, shared_frame_ms
from explorer.perf.estimate import EstimateOptions, Estimator
from explorer.perf.params import load_params
from reference.zoo import NetBuilder, mobilenet_v2
from tests.models import tiny_resnet, unsupported_middle

DB = load_database()
KV260, ZCU102, PYNQ = DB.board("kv260"), DB.board("zcu102"), DB.board("pynq-z2")


@pytest.fixture(scope="module")
def mnv2() -> Estimator:
    return Estimator(graph_from_model(mobilenet_v2()), ZCU102)


def test_bigger_architecture_is_faster_but_not_by_peak_ratio(mnv2: Estimator) -> None:
    small = mnv2.estimate(DpuConfig(arch="B512")).dpu_ms
    big = mnv2.estimate(DpuConfig(arch="B4096")).dpu_ms
    assert big < small < 8 * big  # memory traffic and per-layer costs do not shrink with the array


def test_clock_scales_compute_time(mnv2: Estimator) -> None:
    slow = mnv2.estimate(DpuConfig(clock_mhz=150)).dpu_ms
    fast = mnv2.estimate(DpuConfig(clock_mhz=300)).dpu_ms
    assert 1.3 < slow / fast <= 2.0 + 1e-9


def test_more_cores_raise_fps_multi_only(mnv2: Estimator) -> None:
    one = mnv2.estimate(DpuConfig(cores=1), options=EstimateOptions(threads=8))
    three = mnv2.estimate(DpuConfig(cores=3), options=EstimateOptions(threads=8))
    assert three.latency_ms == pytest.approx(one.latency_ms)
    assert one.fps_multi < three.fps_multi < 3 * one.fps_multi + 1e-6  # shared DDR


def test_fps_single_is_inverse_latency_and_pre_post_add(mnv2: Estimator) -> None:
    base = mnv2.estimate(DpuConfig())
    assert base.fps_single == pytest.approx(1000 / base.latency_ms)
    more = mnv2.estimate(DpuConfig(), options=EstimateOptions(pre_ms=5, post_ms=2))
    assert more.latency_ms == pytest.approx(base.latency_ms + 7)
    assert more.fps_multi <= base.fps_multi


def test_split_moves_work_to_the_cpu(mnv2: Estimator) -> None:
    full = mnv2.estimate(DpuConfig())
    half = mnv2.estimate(DpuConfig(), split=50)
    assert half.cpu_ms > 10 * full.cpu_ms
    assert half.dpu_ms < full.dpu_ms
    assert [s.device for s in half.subgraphs] == ["DPU", "CPU"]
    assert half.latency_ms > full.latency_ms


def test_each_dpu_subgraph_costs_a_host_invocation() -> None:
    est = Estimator(graph_from_model(unsupported_middle()), KV260)
    result = est.estimate(DpuConfig())
    dpu_subs = [s for s in result.subgraphs if s.device == "DPU"]
    assert len(dpu_subs) == 2 and all(s.host_ms > 0 for s in dpu_subs)
    assert result.host_ms == pytest.approx(sum(s.host_ms for s in dpu_subs))


def test_dpu_pynq_runs_exactly_one_dpu_subgraph() -> None:
    """DPU-PYNQ's DpuOverlay takes a model with one DPU subgraph (DPU-PYNQ issues #72, #102); VART any number."""
    est = Estimator(graph_from_model(unsupported_middle()), KV260)
    vart = est.estimate(DpuConfig())
    pynq = est.estimate(DpuConfig(), options=EstimateOptions(runtime="pynq"))
    assert vart.dpu_subgraphs == pynq.dpu_subgraphs == 2
    assert vart.runtime_problem == "" and vart.summary()["dpu_subgraphs"] == 2
    assert "exactly one DPU subgraph" in pynq.runtime_problem and "this partition has 2" in pynq.runtime_problem
    first = min(i for i, p in enumerate(pynq.partition.placements) if p.device == "CPU")
    cut = est.estimate(DpuConfig(), split=first, options=EstimateOptions(runtime="pynq"))
    assert cut.dpu_subgraphs == 1 and cut.runtime_problem == ""  # a split that leaves one DPU part


def test_layer_bounds() -> None:
    geo = geometry(resolve(DpuConfig()), KV260)
    # a 3x3 convolution with many channels on a small map is compute-bound; a 1x1 with few channels on a
    # large map moves more bytes than it computes
    h = NetBuilder("h", (1, 256, 28, 28))
    heavy = graph_from_model(h.build([h.conv("input", 256, act=None)]))
    b = NetBuilder("l", (1, 8, 256, 256))
    light = graph_from_model(b.build([b.conv("input", 8, k=1, act=None)]))
    assert dpu_layer_time(heavy.layers[0], Placement(DPU), geo).bound == "compute"
    assert dpu_layer_time(light.layers[0], Placement(DPU), geo).bound == "memory"


def test_reads_and_writes_overlap_but_share_the_ddr() -> None:
    # an expanding 1x1 layer: little read, much written; the save engine writes while the load engines
    # read, so its memory time is set by the larger direction (or by the shared DDR), not by their sum
    b = NetBuilder("expand", (1, 16, 256, 256))
    layer = graph_from_model(b.build([b.conv("input", 96, k=1, act=None)])).layers[0]
    geo = replace(geometry(resolve(DpuConfig(arch="B4096", clock_mhz=325)), ZCU102), traffic_share=1.0)  # every counted byte
    t = dpu_layer_time(layer, Placement(DPU), geo)
    read = layer.input_bytes + layer.weight_bytes
    expected = max(read / geo.read_bytes_per_s, layer.output_bytes / geo.write_bytes_per_s, t.ddr_bytes / geo.ddr_bytes_per_s)
    assert t.ddr_bytes == read + layer.output_bytes
    assert t.memory_ms == pytest.approx(expected * 1e3)
    assert t.memory_ms < t.ddr_bytes / min(geo.read_bytes_per_s, geo.write_bytes_per_s) * 1e3


def test_the_dpu_moves_its_share_of_the_counted_bytes() -> None:
    # PG338 Table 14: a core moves less than the layers' inputs, weights and outputs add up to (traffic_share);
    # every stream shrinks by it, so a memory-bound layer's port and DDR time do too, and its compute does not
    b = NetBuilder("expand", (1, 16, 256, 256))
    layer = graph_from_model(b.build([b.conv("input", 96, k=1, act=None)])).layers[0]
    every = replace(geometry(resolve(DpuConfig(arch="B4096", clock_mhz=325)), ZCU102), traffic_share=1.0)
    half = replace(every, traffic_share=0.5)
    full, shared = dpu_layer_time(layer, Placement(DPU), every), dpu_layer_time(layer, Placement(DPU), half)
    assert full.ddr_bytes == layer.input_bytes + layer.weight_bytes + layer.output_bytes
    assert shared.ddr_bytes == pytest.approx(full.ddr_bytes / 2, abs=2)
    assert full.bound == "memory" and shared.port_ms == pytest.approx(full.port_ms / 2, rel=1e-3)
    assert shared.memory_ms == pytest.approx(full.memory_ms / 2, rel=1e-3) and shared.compute_ms == full.compute_ms
    assert 0 < load_params().traffic_share < 1


def _layer(compute_ms: float, port_ms: float, ddr_bytes: int) -> LayerTime:
    return LayerTime(0, DPU, 0.0, compute_ms, port_ms, "compute", 0, ddr_bytes, port_ms)


def test_ddr_sharing_reduces_to_the_roofline_and_spares_compute() -> None:
    geo = replace(geometry(resolve(DpuConfig(arch="B4096", cores=3)), ZCU102), core_sharing=0.0)  # the DDR alone
    ddr_per_ms = geo.ddr_bytes_per_s / 1e3
    overhead_ms = geo.layer_overhead_s * 1e3

    def alone(t: LayerTime) -> LayerTime:  # the single-core time as dpu_layer_time sets it
        memory = max(t.port_ms, t.ddr_bytes / ddr_per_ms)
        busy = max(t.compute_ms, memory) + geo.overlap_loss * min(t.compute_ms, memory)
        return LayerTime(0, DPU, busy + overhead_ms, t.compute_ms, memory, "compute", 0, t.ddr_bytes, t.port_ms)

    # memory-bound through the DDR in every layer: three cores share it, so the whole-frame roofline
    # (the others draw nothing during a layer's fixed overhead, so with it the frame is a little faster)
    memory = [alone(_layer(0.0, 0.0, 10_000_000)) for _ in range(4)]
    roofline = 3 * 40_000_000 / ddr_per_ms
    assert roofline < shared_frame_ms(memory, geo, 3) < roofline + 4 * overhead_ms
    no_overhead = [LayerTime(0, DPU, t.memory_ms, 0.0, t.memory_ms, "memory", 0, t.ddr_bytes) for t in memory]
    assert shared_frame_ms(no_overhead, replace(geo, layer_overhead_s=0.0), 3) == pytest.approx(roofline, rel=1e-6)
    # one core alone, or layers that move nothing, are not slowed
    assert shared_frame_ms(memory, geo, 1) == pytest.approx(sum(t.time_ms for t in memory))
    compute = [alone(_layer(5.0, 0.0, 0)) for _ in range(4)]
    assert shared_frame_ms(compute, geo, 3) == pytest.approx(sum(t.time_ms for t in compute))
    # a mixed frame: its memory-bound layer is slowed by what the others draw, beyond its ports' time,
    # while the frame stays faster than the three-core roofline would say if the others drew it all
    mixed = [alone(_layer(20.0, 0.5, 1_000_000)), alone(_layer(0.0, 0.5, 8_000_000))]
    slowed = shared_frame_ms(mixed, geo, 3)
    assert sum(t.time_ms for t in mixed) < slowed < sum(t.time_ms for t in mixed) + 2 * 9_000_000 / ddr_per_ms
    assert shared_frame_ms(mixed, geo, 2) < slowed


def test_core_sharing_lengthens_every_layer_but_keeps_the_ddr_roofline() -> None:
    geo = replace(geometry(resolve(DpuConfig(arch="B4096", cores=3)), ZCU102), core_sharing=0.1)
    overhead_ms = geo.layer_overhead_s * 1e3
    # compute-bound layers that move nothing: each of 3 busy cores is slower by 0.1 per other core
    compute = [LayerTime(0, DPU, 5.0 + overhead_ms, 5.0, 0.0, "compute", 0, 0, 0.0) for _ in range(4)]
    alone = sum(t.time_ms for t in compute)
    assert shared_frame_ms(compute, geo, 3) == pytest.approx(alone * 1.2)
    assert shared_frame_ms(compute, geo, 2) == pytest.approx(alone * 1.1)
    assert shared_frame_ms(compute, geo, 1) == pytest.approx(alone)
    # layers bound by their ports are lengthened the same way; the DDR's roofline is never undercut
    ported = [LayerTime(0, DPU, 1.0 + overhead_ms, 0.0, 1.0, "memory", 0, 1000, 1.0) for _ in range(4)]
    assert shared_frame_ms(ported, geo, 3) == pytest.approx(sum(t.time_ms for t in ported) * 1.2)
    ddr_ms = 10_000_000 / (geo.ddr_bytes_per_s / 1e3)
    bound = [LayerTime(0, DPU, ddr_ms + overhead_ms, 0.0, ddr_ms, "memory", 0, 10_000_000, 0.0) for _ in range(4)]
    roofline = 3 * 4 * ddr_ms
    assert roofline < shared_frame_ms(bound, geo, 3) < roofline + 4 * overhead_ms * 1.2


def test_channel_augmentation_speeds_up_first_layer() -> None:
    b = NetBuilder("first", (1, 3, 224, 224))
    graph = graph_from_model(b.build([b.conv("input", 32, k=3, s=2, act=None)]))
    with_aug = dpu_layer_time(graph.layers[0], Placement(DPU), geometry(resolve(DpuConfig(channel_augmentation=True)), KV260))
    without = dpu_layer_time(graph.layers[0], Placement(DPU), geometry(resolve(DpuConfig(channel_augmentation=False)), KV260))
    assert with_aug.compute_ms < without.compute_ms


def test_ram_high_avoids_reloads_when_neither_fits() -> None:
    b = NetBuilder("big", (1, 512, 64, 64))
    graph = graph_from_model(b.build([b.conv("input", 512, k=3, act=None)]))  # 2.4 MB weights, 2 MB input
    low = dpu_layer_time(graph.layers[0], Placement(DPU), geometry(resolve(DpuConfig(ram_usage="low")), KV260))
    high = dpu_layer_time(graph.layers[0], Placement(DPU), geometry(resolve(DpuConfig(ram_usage="high")), KV260))
    layer = graph.layers[0]
    assert low.ddr_bytes > layer.input_bytes + layer.output_bytes + layer.weight_bytes
    assert high.ddr_bytes < low.ddr_bytes


def test_cpu_model_threads_and_cortex_a9() -> None:
    params = load_params()
    graph = graph_from_model(tiny_resnet(64))
    conv = next(layer for layer in graph.layers if layer.kind == "conv")
    one = cpu_layer_ms(conv, KV260.cpu, params, threads=1)
    four = cpu_layer_ms(conv, KV260.cpu, params, threads=4)
    assert four < one
    assert cpu_layer_ms(conv, PYNQ.cpu, params, threads=1) > one  # 2 x A9 @ 650 MHz is slower than an A53


def test_the_engines_move_whole_bank_rows() -> None:
    """A pixel's channels move in bank rows of ICP channels: on B4096 (ICP 16) a layer writing 28 channels
    takes as long to save as one writing 32, and 3 input channels load as 16; the DDR sees the real read bytes."""
    geo = replace(geometry(resolve(DpuConfig(arch="B4096", clock_mhz=325)), ZCU102), traffic_share=1.0)  # every counted byte
    assert row_bytes([(1, 28, 10, 10)], 16) == row_bytes([(1, 32, 10, 10)], 16) == 3200
    assert row_bytes([(1, 3, 10, 10)], 16) == 1600 and row_bytes([(1, 64)], 16) == 64

    def first_conv(channels: int) -> LayerTime:  # seed 002's first layer: 3 -> channels, stride 2, on a big image
        b = NetBuilder("first", (1, 3, 512, 512))
        layer = graph_from_model(b.build([b.conv("input", channels, s=2, act=None)])).layers[0]
        return dpu_layer_time(layer, Placement(DPU), geo)

    wide, narrow = first_conv(32), first_conv(28)
    assert narrow.port_ms == pytest.approx(wide.port_ms, rel=1e-3) and narrow.compute_ms == wide.compute_ms
    assert narrow.time_ms == pytest.approx(wide.time_ms, rel=1e-3)
    # what bounds it is loading 3 channels a pixel as rows of 16: even half the filters would not shorten it
    assert wide.bound == "memory" and wide.port_ms * 1e-3 == pytest.approx(512 * 512 * 16 / geo.load_bytes_per_s, rel=1e-2)
    assert first_conv(16).time_ms > 0.9 * wide.time_ms
    b = NetBuilder("read", (1, 28, 256, 256))
    layer = graph_from_model(b.build([b.conv("input", 16, k=1, act=None)])).layers[0]
    t = dpu_layer_time(layer, Placement(DPU), geo)
    assert t.ddr_bytes == layer.input_bytes + layer.weight_bytes + layer.output_bytes  # 28 bytes a pixel from DDR
    assert t.port_ms * 1e-3 == pytest.approx(row_bytes(layer.input_shapes, 16) / geo.load_bytes_per_s, rel=1e-3)


def test_zynq7000_has_narrower_ports() -> None:
    z = geometry(resolve(parse_dpu_config({"arch": "B1152"}, PYNQ)), PYNQ)
    u = geometry(resolve(DpuConfig(arch="B1152", clock_mhz=200)), KV260)
    assert z.read_bytes_per_s < u.read_bytes_per_s and z.ddr_bytes_per_s < u.ddr_bytes_per_s


def test_no_dpu_work_means_cpu_bound(mnv2: Estimator) -> None:
    result = mnv2.estimate(DpuConfig(), split=0)
    assert result.dpu_ms == 0 and result.host_ms == 0 and math.isfinite(result.fps_multi)
    assert result.multi_bound in ("arm", "threads")


@pytest.mark.slow
def test_calibration_target_median_error_within_10_percent() -> None:
    from reference.published import ROWS, errors, median_abs_error

    results = errors(tuple(r for r in ROWS if r.metric != "cpu_ms"))
    assert median_abs_error(results) <= 0.10


def test_each_subgraph_run_holds_its_core_for_a_runner_call() -> None:
    # a network fast enough that the runner round trip matters: per core, no more than one run per call
    b = NetBuilder("fast", (1, 8, 16, 16))
    fast = Estimator(graph_from_model(b.build([b.conv("input", 16, k=3)])), KV260)
    est = fast.estimate(DpuConfig(arch="B4096"), None, EstimateOptions(threads=8))
    call_ms = runner_call_ms(KV260.cpu, load_params())
    assert est.multi_bound == "dpu"
    assert est.fps_multi == pytest.approx(1000.0 / (est.dpu_ms + est.dpu_subgraphs * call_ms), rel=1e-6)
    assert est.fps_multi < 1000.0 / call_ms


def test_variants_share_the_layer_times_they_have_in_common() -> None:
    """Estimators of one model's pruned variants share one LayerTimes store: a layer whose shape a variant did
    not change is timed once per geometry, and every estimate equals that of an estimator of its own."""
    from explorer.perf.estimate import LayerTimes

    def net(width: int) -> ModelGraph:
        b = NetBuilder("variant", (1, 3, 32, 32), seed=1)
        x = b.conv("input", 16, k=3, s=2)
        x = b.conv(x, width, k=3)  # the pruned layer
        return graph_from_model(b.build([b.conv(x, 8, k=1)]))

    store = LayerTimes()
    full, pruned = Estimator(net(16), KV260, layer_times=store), Estimator(net(12), KV260, layer_times=store)
    config = DpuConfig(arch="B1152")
    for est, width in ((full, 16), (pruned, 12)):
        assert est.estimate(config).latency_ms == Estimator(net(width), KV260).estimate(config).latency_ms
    times = store.of(geometry(resolve(config), KV260, load_params()))
    first = {k for k in times if k[0] in (full._signatures[0], pruned._signatures[0])}
    assert full._signatures[0] == pruned._signatures[0] and len(first) == 1
    assert full._signatures[2] != pruned._signatures[2]  # the consumer of the pruned layer reads fewer channels
