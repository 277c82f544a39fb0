"""`explore compare`: two design points side by side, layer by layer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from explorer.compress.prune import apply_pruning
from explorer.perf.compare import RESOLUTION
from reference import zoo
from tests.commands.test_estimate_cli import run


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Seed 002's stand-in detector (reference/zoo.py) and a copy whose early and late layers lose channels in
    multiples of 4, as seed 002 prunes."""
    folder = tmp_path_factory.mktemp("seed002")
    model = zoo.mobilenet_v2_ssd_seed002(size=256)
    kept = {"conv_2": np.arange(28), "conv_29": np.arange(88), "conv_305": np.arange(448)}  # conv_12: conv_2's depthwise
    onnx.save(model, folder / "a.onnx")
    onnx.save(apply_pruning(model, kept), folder / "b.onnx")
    return folder / "a.onnx", folder / "b.onnx"


def test_two_dpu_sizes(capsys: pytest.CaptureFixture[str], detector: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = detector
    html = tmp_path / "cmp.html"
    code, out, _ = run(
        capsys, "compare", str(a), "--board", "zcu102", "--arch", "B512", "--b", "arch=B4096", "--json", "--html", str(html)
    )
    data = json.loads(out)
    assert code == 0 and data["source"] == "model" and data["b"]["dpu_ms"] < data["a"]["dpu_ms"] / 3
    assert data["pruned_layers"] == 0 and all(p["channels_a"] == p["channels_b"] for p in data["layers"])
    assert sum(p["time_b_ms"] for p in data["layers"]) < sum(p["time_a_ms"] for p in data["layers"])
    page = html.read_text()
    assert "plotly" in page.lower() and "B512" in page and "B4096" in page


def test_pruned_against_unpruned_says_per_layer_what_pruning_bought(
    capsys: pytest.CaptureFixture[str], detector: tuple[Path, Path]
) -> None:
    a, b = detector
    code, out, _ = run(capsys, "compare", str(a), "--model-b", str(b), "--board", "zcu102", "--arch", "B4096", "--json")
    data = json.loads(out)
    pruned = {p["name"]: p for p in data["layers"] if p["verdict"]}
    assert code == 0 and set(pruned) >= {"conv_2", "conv_29", "conv_305"}
    for p in pruned.values():
        assert (p["verdict"] == "shorter") == (p["time_b_ms"] <= p["time_a_ms"] * (1 - RESOLUTION))
        if p["kind"] in ("conv", "dwconv"):  # B4096: OCP = ICP = 16
            assert (p["passes_a"], p["passes_b"]) == (math.ceil(p["channels_a"] / 16), math.ceil(p["channels_b"] / 16))
    # seed 002, Figure 13: pruning the early layers bought no time. The first convolution (32 -> 28 channels)
    # and its depthwise neighbour keep two passes of 16 channels, and the engines move a pixel's 28 channels
    # in two bank rows of 16 as they move 32: neither gets shorter. The late layer (512 -> 448) does.
    for early in ("conv_2", "conv_12"):
        assert pruned[early]["passes_a"] == pruned[early]["passes_b"] == 2
        assert pruned[early]["verdict"] == "not shorter: 2 channel passes either way"
        assert pruned[early]["time_b_ms"] == pytest.approx(pruned[early]["time_a_ms"], rel=RESOLUTION)
    assert pruned["conv_305"]["verdict"] == "shorter"
    assert data["b"]["macs"] < data["a"]["macs"]
    code, text, _ = run(capsys, "compare", str(a), "--model-b", str(b), "--board", "zcu102", "--arch", "B4096", "--top", "3")
    assert "layers with other output channels" in text and "the 3 layers with the largest difference" in text


def test_a_bad_change_names_the_flag(capsys: pytest.CaptureFixture[str], detector: tuple[Path, Path]) -> None:
    a, _ = detector
    code, _, err = run(capsys, "compare", str(a), "--board", "zcu102", "--b", "arch")
    assert code != 0 and "--b 'arch': expected FIELD=VALUE" in err
    code, _, err = run(capsys, "compare", str(a), "--board", "zcu102", "--b", "arch=B9999")
    assert code != 0 and "--b" in err and "B9999" in err
