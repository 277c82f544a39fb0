"""Vivado report and board-result parsers, on stored text in the format Vivado prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.errors import ExplorerError
from explorer.export.parsers import parse_board_run, parse_timing_summary, parse_utilization

DATA = Path(__file__).with_name("data")


def test_utilization_ultrascale_plus_with_prohibited_column() -> None:
    util = parse_utilization((DATA / "utilization_zu3eg_2022.rpt").read_text())
    assert util.used == {"lut": 40128, "ff": 65390, "bram36": 164.5, "uram": 0, "dsp": 326}
    assert util.available == {"lut": 70560, "ff": 141120, "bram36": 216, "uram": 0, "dsp": 360}
    assert util.device == "xczu3eg-sbva484-1-i" and util.design_state == "Routed"
    assert util.tool_version.startswith("Vivado v.2022.2")


def test_utilization_7series_without_prohibited_column() -> None:
    util = parse_utilization((DATA / "utilization_z7020_2020.rpt").read_text())
    assert util.used == {"lut": 33180, "ff": 52904, "bram36": 101, "dsp": 130}  # sub-rows (LUT as Logic) are skipped
    assert util.available["lut"] == 53200 and util.device == "7z020clg400-1"


def test_utilization_rejects_other_text() -> None:
    with pytest.raises(ExplorerError, match="not a Vivado report_utilization"):
        parse_utilization((DATA / "timing_summary_met.rpt").read_text())


def test_timing_summary_met() -> None:
    t = parse_timing_summary((DATA / "timing_summary_met.rpt").read_text())
    assert t.met and t.wns_ns == 0.142 and t.whs_ns == 0.010 and t.tns_failing_endpoints == 0
    dpu = t.clocks["clk_dpu_dpu_system_dpu_clk_wiz_0"]
    assert (dpu.period_ns, dpu.frequency_mhz, dpu.wns_ns) == (5.0, 200.0, 0.142)
    assert t.clocks["clkfbout_dpu_system_dpu_clk_wiz_0"].wns_ns is None  # no paths: blank slack columns
    # 1x: 1000/(5-0.142) = 205.8 MHz; 2x: 1000/(2.5-0.305)/2 = 227.8 MHz -> the 1x domain limits
    assert t.dpu_fmax_mhz() == pytest.approx(1000 / (5 - 0.142))


def test_timing_summary_failed() -> None:
    t = parse_timing_summary((DATA / "timing_summary_failed.rpt").read_text())
    assert not t.met and t.wns_ns == -0.231 and t.tns_failing_endpoints == 912
    assert t.dpu_fmax_mhz() == pytest.approx(1000 / (2.5 + 0.231) / 2)  # the 2x clock fails: it limits
    with pytest.raises(ExplorerError, match="Design Timing Summary"):
        parse_timing_summary((DATA / "utilization_zu3eg_2022.rpt").read_text())


def board_result(**changes: object) -> str:
    data: dict[str, object] = {
        "schema": "dpu-explorer/board-run/1",
        "source": "board",
        "board": "KV260",
        "fps_single": 310.2,
        "fps_multi": 540.0,
        "latency_ms": {"median": 3.2, "p90": 3.5, "mean": 3.25},
        "dpu_ms": 2.1,
        "cpu_ms": 1.1,
        "frames": 200,
        "threads": 2,
    }
    data.update(changes)
    return json.dumps(data)


def test_board_run() -> None:
    assert parse_board_run(board_result())["fps_multi"] == 540.0
    with pytest.raises(ExplorerError, match="schema"):
        parse_board_run(board_result(schema="other"))
    with pytest.raises(ExplorerError, match="source must be 'board'"):
        parse_board_run(board_result(source="model"))
    with pytest.raises(ExplorerError, match="fps_single"):
        parse_board_run(board_result(fps_single=-1))
    with pytest.raises(ExplorerError, match="not JSON"):
        parse_board_run("{oops")
