"""80 % prediction intervals: around every estimate, wider where the model has seen less (issue #14)."""

from __future__ import annotations

import math

import pytest

from explorer.graph.prepare import graph_from_model
from explorer.hardware.config import DpuConfig
from explorer.hardware.database import load_database
from explorer.perf.estimate import EstimateOptions, Estimator
from explorer.perf.uncertainty import Z80, intervals, profile_error_model, shipped_error_model
from reference.zoo import NetBuilder, mobilenet_v2


def test_the_spread_widens_off_the_fitted_boards_and_architectures() -> None:
    db = load_database()
    seen, unseen = shipped_error_model(db.board("kv260")), shipped_error_model(db.board("ultra96-v2"))
    assert seen.sigma_dpu < unseen.sigma_dpu and seen.sigma_cpu < unseen.sigma_cpu
    assert "not in the shipped fit" in unseen.basis and "among the fitted boards" in seen.basis
    assert seen.dpu_sigma("B4096") == seen.sigma_dpu < seen.dpu_sigma("B1152")  # only B4096 rows were fitted
    narrow = profile_error_model(db.board("ultra96-v2"), "p.yaml", [0.01, -0.02, 0.015])
    assert narrow.sigma_dpu == seen.sigma_dpu  # never narrower than the shipped fit on its own rows
    wide = profile_error_model(db.board("ultra96-v2"), "p.yaml", [0.3, -0.2, 0.25])
    assert wide.sigma_dpu == pytest.approx(1.4826 * 0.25) and "p.yaml" in wide.basis


def test_intervals_combine_the_two_sides_by_their_share_of_the_time() -> None:
    model = shipped_error_model(load_database().board("ultra96-v2"))
    only_dpu = intervals(model, "B4096", dpu_ms=10, host_ms=0, cpu_ms=0, pre_post_ms=0, latency_ms=10,
                         fps_single=100, fps_multi=300, bound="dpu")  # fmt: skip
    assert only_dpu.sigma["latency_ms"] == pytest.approx(model.sigma_dpu)
    low, high = only_dpu.bounds["fps_single"]
    assert low == pytest.approx(100 * math.exp(-Z80 * model.sigma_dpu)) and high == pytest.approx(
        100 * math.exp(Z80 * model.sigma_dpu)
    )
    half = intervals(model, "B4096", dpu_ms=5, host_ms=0, cpu_ms=5, pre_post_ms=0, latency_ms=10,
                     fps_single=100, fps_multi=300, bound="arm")  # fmt: skip
    assert half.sigma["latency_ms"] == pytest.approx(math.hypot(model.sigma_dpu / 2, model.sigma_cpu / 2))
    assert half.sigma["fps_multi"] == pytest.approx(model.sigma_cpu)  # bound by the Arm: the Arm's spread
    given = intervals(model, "B4096", dpu_ms=5, host_ms=0, cpu_ms=0, pre_post_ms=5, latency_ms=10,
                      fps_single=100, fps_multi=300, bound="threads")  # fmt: skip
    assert given.sigma["latency_ms"] == pytest.approx(model.sigma_dpu / 2)  # user-given pre/post time is exact


def test_every_estimate_carries_its_intervals() -> None:
    db = load_database()
    graph = graph_from_model(mobilenet_v2(size=96))
    for board in ("kv260", "ultra96-v2"):
        est = Estimator(graph, db.board(board), db=db).estimate(DpuConfig(arch="B1152"), None, EstimateOptions(threads=4))
        assert est.intervals is not None
        for metric, (low, high) in est.intervals.bounds.items():
            assert low < getattr(est, metric) < high
        summary = est.summary()["intervals"]
        assert summary["level"] == 0.8 and summary["fps_multi"] == list(est.intervals.bounds["fps_multi"])


def test_dpu_time_in_kinds_no_fitted_row_has_widens_the_interval() -> None:
    db = load_database()
    kv260 = db.board("kv260")
    model = shipped_error_model(kv260)
    assert {"conv", "dwconv", "add"} <= model.kinds_fitted and "deconv" not in model.kinds_fitted

    def net(decoder: bool) -> Estimator:
        b = NetBuilder("decoder" if decoder else "encoder", (1, 16, 64, 64))
        x = b.conv("input", 64, k=3)
        x = b.deconv(x, 64) if decoder else b.conv(x, 64, k=3)
        return Estimator(graph_from_model(b.build([x])), kv260, db=db)

    encoder, decoder = (net(d).estimate(DpuConfig(arch="B4096")) for d in (False, True))
    assert encoder.intervals is not None and decoder.intervals is not None
    assert encoder.intervals.sigma["latency_ms"] < decoder.intervals.sigma["latency_ms"]
    assert decoder.intervals.sigma["latency_ms"] < math.hypot(model.sigma_dpu, model.sigma_operator)
    # all of the DPU time unfitted: the DPU side takes the unseen spread in full
    direct = intervals(model, "B4096", dpu_ms=10, host_ms=0, cpu_ms=0, pre_post_ms=0, latency_ms=10,
                       fps_single=100, fps_multi=100, bound="dpu", dpu_unfitted_ms=10)  # fmt: skip
    assert direct.sigma["fps_multi"] == pytest.approx(math.hypot(model.sigma_dpu, model.sigma_operator))
