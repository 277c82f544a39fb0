from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from explorer.cli import main

MODEL = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# prune + quantize for one DPU configuration; run twice, the second answer comes from the cache
COMPRESS = (
    "compress",
    str(MODEL),
    "--data",
    "pose-synth:16:3",
    "--calib-data",
    "pose-synth:8:2",
    "--prune",
    "all=0.7",
    "--quantize",
    "dpu",
    "--board",
    "ultra96-v2",
    "--arch",
    "B1600",
)


def test_compress_json_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.onnx"
    code, stdout, err = run(capsys, *COMPRESS, "-o", str(out), "--cache-dir", str(tmp_path / "cache"), "--json")
    assert code == 0, err
    data = json.loads(stdout)
    assert {"euclidean_error", "jsd", "pck"} == set(data["metrics"]) == set(data["float_metrics"])
    assert data["source"].startswith("measured") and data["macs_after"] <= data["macs_before"]
    onnx.checker.check_model(onnx.load(str(out)))
    code, stdout, _ = run(capsys, *COMPRESS, "--cache-dir", str(tmp_path / "cache"))
    assert code == 0 and "from the cache" in stdout and "(measured" in stdout


def test_apoz_listing_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, "compress", str(MODEL), "--apoz", "--data", "pose-synth:8:3", "--no-cache")
    assert code == 0 and "g0" in stdout and "not prunable" in stdout
    code, _, err = run(capsys, "compress", str(MODEL), "--data", "pose-synth:8:3", "--prune", "g9=0.5", "--no-cache")
    assert code == 1 and "unknown layer group 'g9'" in err
    code, _, err = run(capsys, "compress", str(tmp_path / "x.onnx"), "--data", "pose-synth:8:3")
    assert code == 1 and "no such ONNX file" in err
    code, _, err = run(capsys, "compress", str(MODEL), "--data", "nothing.npz", "--no-cache")
    assert code == 1 and "no such file or folder" in err
