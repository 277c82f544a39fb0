from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from explorer.report.data import TrialRow, hypervolume, hypervolume_2d_or_more, pareto_front, pareto_info
from tests.study.test_runner import small_study


def row(number: int, values: tuple[float, ...], feasible: bool = True, state: str = "COMPLETE") -> TrialRow:
    return TrialRow(number, state, values, feasible, {}, {}, {}, {}, {})


def test_pareto_front_and_hypervolume() -> None:
    assert sorted(pareto_front([[0, 1], [1, 0], [1, 1], [0.5, 0.5]])) == [0, 1, 3]
    import numpy as np

    pts, ref = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2.0, 2.0])
    assert hypervolume_2d_or_more(pts, ref) == pytest.approx(3.0)
    assert hypervolume(pts, ref) == pytest.approx(3.0)
    pts3 = np.array([[0.2, 0.5, 0.3], [0.5, 0.1, 0.6], [0.9, 0.9, 0.05]])
    assert hypervolume(pts3, np.ones(3) * 1.1) == pytest.approx(hypervolume_2d_or_more(pts3, np.ones(3) * 1.1))


def test_pareto_info_directions_feasibility_and_history() -> None:
    rows = [
        row(0, (10.0, 0.5)),
        row(1, (20.0, 0.6)),
        row(2, (30.0, 0.1), feasible=False),
        row(3, (15.0, 0.4)),
        row(4, (), state="FAIL"),
    ]
    info = pareto_info([("fps", "maximize"), ("error", "minimize")], rows)
    assert info.pareto == (1, 3)  # trial 0 is dominated by 3; trial 2 is infeasible
    hv = [h for _, h in info.hypervolume]
    assert [n for n, _ in info.hypervolume] == [0, 1, 3] and hv == sorted(hv) and hv[-1] > hv[0]


def test_table_columns_say_their_source_counts_are_integers_and_equal_fronts_share_a_row() -> None:
    from explorer.report.html import _fmt, column_sources, pareto_rows

    def trial(number: int, fps: float, error: float) -> TrialRow:
        metrics = {"fps_multi": fps, "euclidean_error": error, "lut": 26350.0, "bram36": 120.5}
        sources = {"fps_multi": "model", "euclidean_error": "measured", "lut": "model", "bram36": "model"}
        return TrialRow(number, "COMPLETE", (fps, error), True, {}, metrics, sources, {"dpu": {}, "prune": {}}, {})

    rows = [trial(0, 300.0, 2.0), trial(1, 200.0, 1.0), trial(2, 300.0, 2.0), trial(3, 100.0, 3.0)]
    info = pareto_info([("fps_multi", "maximize"), ("euclidean_error", "minimize")], rows)
    assert info.pareto == (0, 1, 2)
    assert [r["trials"] for r in pareto_rows(info, {"lut": 1, "ff": 1, "bram36": 1, "uram": 1, "dsp": 1})] == [[0, 2], [1]]
    assert column_sources(info, ["fps_multi", "euclidean_error", "lut"]) == {
        "fps_multi": "estimate",
        "euclidean_error": "measured",
        "lut": "estimate",
    }
    assert _fmt(26350.0, "lut") == "26,350" and _fmt(120.5, "bram36") == "120.5" and _fmt(2.345678, "euclidean_error") == "2.346"


def test_board_measurements_are_drawn_beside_their_predictions() -> None:
    from explorer.report.html import figures

    run = {"board": "KV260", "fps_single": 80.0, "fps_multi": 90.0, "latency_ms": {"median": 12.5}}
    measured = TrialRow(0, "COMPLETE", (100.0, 0.5), True, {}, {"fps_multi": 100.0}, {}, {}, {}, measured={"run": run})
    other = TrialRow(1, "COMPLETE", (50.0, 0.2), True, {}, {"fps_multi": 50.0}, {}, {}, {})
    info = pareto_info([("fps_multi", "maximize"), ("euclidean_error", "minimize")], [measured, other])
    traces = {t.name: t for t in figures(info)["pareto_fps_multi_euclidean_error"].data}
    assert list(traces["measured on the board"].x) == [90.0] and list(traces["measured on the board"].y) == [0.5]
    assert list(traces["predicted -> measured"].x) == [100.0, 90.0, None]  # a line from the prediction to it


def test_the_front_is_ranked_again_with_what_the_board_measured() -> None:
    from explorer.report.html import reranked_rows

    sources = {"fps_multi": "model", "euclidean_error": "measured"}
    slow = TrialRow(0, "COMPLETE", (100.0, 0.5), True, {}, {}, sources, {}, {}, measured={"run": {"fps_multi": 40.0}})
    other = TrialRow(1, "COMPLETE", (50.0, 0.2), True, {}, {}, sources, {}, {})
    failed = TrialRow(2, "FAIL", (), False, {}, {}, {}, {}, {})
    info = pareto_info([("fps_multi", "maximize"), ("euclidean_error", "minimize")], [slow, other, failed])
    assert info.pareto == (0, 1)  # as estimated, both are on the front
    again = reranked_rows(info)
    assert [r["trial"] for r in again] == [1]  # measured at 40 FPS, trial 0 is dominated
    assert [v["source"] for v in again[0]["values"]] == ["estimate", "measured"]
    assert reranked_rows(pareto_info(info.objectives, [other])) == []  # nothing measured: no second front


@pytest.mark.slow
def test_report_page_and_csv(tmp_path: Path) -> None:
    from explorer.report.html import write_report
    from explorer.study.runner import run_study

    cfg = small_study(tmp_path)
    run_study(cfg, progress=False)
    page = write_report(cfg)
    text = page.read_text()
    assert text.count("Plotly.newPlot(name") == 1 and "pareto_fps_multi_euclidean_error" in text
    assert 'class="fig layers" id="layers-' in text and "const layerData = {" in text  # per layer, drawn when opened
    assert 'id="pareto-table"' in text and "(measured)" in text and "(estimate)" in text
    assert 'euclidean_error <span class="est">(measured)' in text and 'euclidean_error <span class="est">(estimate)' not in text
    assert "e+04" not in text.split('id="pareto-table"')[1].split("</table>")[0]  # counts print as integers
    assert "e+04" not in text.split("<h2>Design details</h2>")[1]  # in the designs' resource bars too
    assert "<script src=" not in text and "plotly.js v" in text  # Plotly embedded once; nothing loaded from outside
    csv = page.with_name("trials.csv").read_text().splitlines()
    assert len(csv) == 1 + 5 and "euclidean_error [measured]" in csv[0] and "fps_multi 80% low [model]" in csv[0]
    assert "error_x" in text  # the intervals drawn as error bars
    _check_in_browser(page)


def _find_or_install_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=900)
        return shutil.which("chromium")
    return None


def _check_in_browser(page: Path) -> None:
    chromium = _find_or_install_chromium()
    if chromium is None:
        pytest.skip("no Chromium found, and it could not be installed here (needs root and apt-get)")
    profile = page.parent / "chromium-profile"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom, log = result.stdout, result.stderr
    console_errors = [line for line in log.splitlines() if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)]
    assert not console_errors, console_errors
    assert dom.count('class="main-svg"') >= 2  # Plotly drew the figures
    assert 'id="pareto-table"' in dom and "<details" in dom


HOSTILE = "<script>alert(1)</script>"


def test_hostile_strings_are_escaped_in_every_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every string a study, a model, an evaluator or an import can bring is shown as text, never as markup."""
    import dataclasses

    from explorer.report import html as report_html
    from explorer.report.data import ParetoInfo

    cfg = small_study(tmp_path)
    cfg = dataclasses.replace(
        cfg,
        store=dataclasses.replace(cfg.store, study_name=f"s{HOSTILE}"),
        model=dataclasses.replace(cfg.model, path=tmp_path / f"m{HOSTILE}.onnx"),
    )
    metric = f"acc{HOSTILE}"
    good = TrialRow(
        0,
        "COMPLETE",
        (10.0, 0.5),
        True,
        {f"p{HOSTILE}": f"v{HOSTILE}", "dpu.arch": "B512"},
        {"fps_multi": 10.0, "euclidean_error": 0.5, metric: 0.9, "lut": 1000.0},
        {metric: "measured", "euclidean_error": "measured"},
        {"dpu": {"arch": f"B{HOSTILE}", "cores": 1}, "prune": {"g0": 0.7}, "split": HOSTILE, "cpu_precision": HOSTILE},
        {
            "fingerprint": HOSTILE,
            "target": HOSTILE,
            "partition": [{"device": HOSTILE, "layers": [HOSTILE], "time_ms": 1.0}],
            "cpu_reasons": {f"layer{HOSTILE}": f"reason{HOSTILE}"},
            "latency_split_ms": {HOSTILE: 1.0},
            "layers": {
                "name": [f"conv{HOSTILE}"],
                "kind": [HOSTILE],
                "time_a_ms": [0.2],
                "time_b_ms": [0.1],
                "gops_a": [1.0],
                "gops_b": [1.5],
                "channels_a": [32],
                "channels_b": [24],
                "passes_a": [2],
                "passes_b": [2],
                "verdict": [f"shorter{HOSTILE}"],
            },
        },
        measured={
            "build": {"source": HOSTILE, "resources": {"lut": 900}, "timing_met": True, "clock_mhz": 300},
            "run": {"board": HOSTILE, "runtime": HOSTILE, "frames": HOSTILE, "fps_single": 9.0, "fps_multi": 9.5},
        },
    )
    failed = TrialRow(1, "FAIL", (), False, {}, {}, {}, {}, {}, fail_reason=f"evaluator said {HOSTILE}")
    info = ParetoInfo((("fps_multi", "maximize"), ("euclidean_error", "minimize")), (good, failed), (0,))
    monkeypatch.setattr(report_html, "load_info", lambda _cfg: info)
    page = report_html.write_report(cfg, tmp_path / "r.html").read_text()
    assert HOSTILE not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 18  # each field is there, as text
    assert 'id="layers-0"' in page and "conv&lt;script&gt;" in page  # the per-layer table and plot data
    # inside the figures' JSON, tojson writes < and > as \u003c / \u003e, never as a closing tag
    assert "</script>alert" not in page and "alert(1)\\u003c/script\\u003e" in page


def test_pareto_front_equals_the_pairwise_definition_and_keeps_ties() -> None:
    import numpy as np

    from explorer.report.data import dominates

    rng = np.random.default_rng(4)
    points = rng.integers(0, 5, size=(60, 3)).astype(float).tolist()  # coarse: many ties and equal points
    want = [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]
    assert pareto_front(points) == want
    assert pareto_front([]) == [] and pareto_front([[1.0, 2.0], [1.0, 2.0]]) == [0, 1]


def test_a_pruned_design_shows_per_layer_what_pruning_bought() -> None:
    """Seed 002's Figures 12 and 13 in the design details: per layer, the unpruned model and the pruned design on
    one DPU, with the layers whose time changed most and whether pruning shortened them."""
    from explorer.graph.layers import ModelGraph
    from explorer.graph.prepare import graph_from_model
    from explorer.hardware.config import DpuConfig, resolve
    from explorer.hardware.database import load_database
    from explorer.perf.compare import compare_layers, to_columns
    from explorer.perf.estimate import Estimator
    from explorer.report.html import layer_view
    from reference.zoo import NetBuilder

    def net(width: int) -> ModelGraph:
        b = NetBuilder("n", (1, 3, 64, 64), seed=2)
        x = b.conv("input", 32, k=3, s=2)
        x = b.conv(x, width, k=3)
        return graph_from_model(b.build([b.conv(x, 64, k=3)]))

    board, config = load_database().board("zcu102"), DpuConfig(arch="B4096")
    ocp_icp = (resolve(config).arch.ocp, resolve(config).arch.icp)
    full, pruned = net(64), net(40)  # 64 -> 40 channels: 4 -> 3 passes of OCP 16
    est_a, est_b = Estimator(full, board).estimate(config), Estimator(pruned, board).estimate(config)
    columns = to_columns(compare_layers(full, est_a, ocp_icp, pruned, est_b, ocp_icp))
    view = layer_view(columns, pruned=True)
    assert view["pruned_layers"] == 1 and view["shorter"] == 1
    top = next(r for r in view["table"] if r["verdict"])  # the consumer, reading fewer channels, may gain more
    assert top["channels_a"] == 64 and top["channels_b"] == 40 and top["passes_b"] == 3 and top["verdict"] == "shorter"
    assert len(view["data"]["time_a"]) == len(view["data"]["names"]) == len(full.layers)
    unpruned = layer_view(to_columns(compare_layers(full, est_a, ocp_icp, full, est_a, ocp_icp)), pruned=False)
    assert unpruned["table"] == [] and unpruned["data"]["time_a"] == [] and layer_view({}, pruned=True) == {}
