from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from explorer.cli import main
from tests.models import unsupported_middle


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(unsupported_middle(), path)
    return path


def test_estimate_json_contract(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "estimate", str(model_path), "--board", "kv260", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"latency_ms", "fps_single", "fps_multi", "gops", "subgraphs", "layers", "resources"} <= set(data)
    assert [s["device"] for s in data["subgraphs"]] == ["DPU", "CPU", "DPU"]
    assert all({"device", "nodes", "time_ms"} <= set(s) for s in data["subgraphs"])
    assert data["source"] == "model" and data["resources"]["source"] == "model"
    assert data["cpu_nodes"][0]["op_type"] == "Sigmoid" and "not supported" in data["cpu_nodes"][0]["reason"]
    assert {"time_ms", "gops", "bound", "device", "macs"} <= set(data["layers"][0])
    # the JSON keeps 6 decimals, so a sub-millisecond latency carries a relative rounding of ~1e-6
    assert data["fps_single"] == pytest.approx(1000 / data["latency_ms"], rel=1e-5)


def test_estimate_text(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "estimate",
        str(model_path),
        "--board",
        "ultra96-v2",
        "--arch",
        "B1600",
        "--split",
        "3",
        "--pre-ms",
        "2",
        "--threads",
        "2",
    )
    assert code == 0
    assert "layers on the CPU and why" in out and "after the split point 3" in out
    assert "source: model" in out and "fps_multi" in out


def test_list_splits(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", str(model_path), "--list-splits")
    assert code == 0 and "crossing tensors" in out and "(input)" in out


def test_estimate_errors(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "estimate", str(tmp_path / "none.onnx"), "--board", "kv260")
    assert code == 1 and "no such ONNX file" in err
    code, _, err = run(capsys, "estimate", str(model_path), "--board", "kv260", "--split", "999")
    assert code == 1 and "outside 0.." in err
    code, _, err = run(capsys, "estimate", str(model_path))
    assert code == 1 and "--board is required" in err
    bad = tmp_path / "bad.onnx"
    bad.write_text("garbage")
    code, _, err = run(capsys, "estimate", str(bad), "--board", "kv260")
    assert code == 1 and "not a readable ONNX model" in err and "Traceback" not in err
