"""The measurements CSV: every row read with its model, metric and DPU configuration; every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.errors import ExplorerError
from explorer.perf.measurements import read_measurements


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text(text)
    return path


def test_rows_become_measurements(tmp_path: Path) -> None:
    rows = read_measurements(
        _csv(
            tmp_path,
            "model,fps,latency_ms,threads,arch,cores,clock_mhz,ip_version,depthwise,timed,split,source\n"
            "m.onnx,80.3,,1,B4096,1,300,3.4,false,,,zoo\n"
            "m.onnx,84.8,,8,B4096,,,,,,,zoo\n"
            "sub/n.onnx,,11.7,1,B2304,,,,,dpu,12,vaitrace\n",
        )
    )
    assert [r.metric for r in rows] == ["fps_single", "fps_multi", "dpu_ms"]
    assert rows[0].model == tmp_path / "m.onnx" and rows[2].model == tmp_path / "sub" / "n.onnx"
    assert rows[0].dpu == {"arch": "B4096", "cores": 1, "clock_mhz": 300, "ip_version": "3.4", "depthwise": False}
    assert rows[1].threads == 8 and rows[1].dpu == {"arch": "B4096"} and rows[2].split == 12
    assert rows[0].source == "zoo" and rows[0].where.endswith("runs.csv:2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model,fps,colour\nm.onnx,1,red\n", "unknown column(s) 'colour'"),
        ("fps\n1\n", "no 'model' column"),
        ("model,fps\n", "no measurement rows"),
        ("model,fps,latency_ms\nm.onnx,1,2\n", "runs.csv:2: give exactly one of 'fps' and 'latency_ms'"),
        ("model,fps\nm.onnx,fast\n", "runs.csv:2: column 'fps': expected a number, got 'fast'"),
        ("model,fps\nm.onnx,-3\n", "the measured value must be positive"),
        ("model,fps,threads\nm.onnx,3,0\n", "column 'threads': at least 1"),
        ("model,fps,timed\nm.onnx,3,dpu\n", "timed 'dpu' takes latency_ms"),
        ("model,latency_ms,threads\nm.onnx,3,4\n", "latency_ms is one frame on one thread"),
        ("model,fps,timed\nm.onnx,3,board\n", "column 'timed': expected one of e2e, dpu, got 'board'"),
        ("model,fps\n,3\n", "column 'model' is empty"),
    ],
)
def test_every_problem_names_the_row_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ExplorerError) as info:
        read_measurements(_csv(tmp_path, text))
    assert message in str(info.value)
