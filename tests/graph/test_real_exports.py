"""Real PyTorch exports (tests/data/models, made by generate.py with torch and timm; torch is not needed
here): the verdicts the explorer gives them, that chaining the partition's parts reproduces onnxruntime on
the original file, and that the exporter does not change the verdict (issue #13)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from explorer.dpu.partition import partition, run_partition
from explorer.dpu.support import place_layers
from explorer.fileio import safe_load
from explorer.graph.prepare import load_graph
from explorer.hardware.config import DpuConfig, resolve
from explorer.hardware.database import load_database
from explorer.perf.estimate import Estimator
from explorer.runtime import run_model

MODELS = Path(__file__).parents[1] / "data" / "models"
EXPECTED: dict[str, Any] = safe_load((MODELS / "expected.yaml").read_text())
EXPORTERS = ("torchscript", "dynamo")


def _verdict(path: Path, hard: bool, config: DpuConfig | None = None) -> tuple[Counter[str], int]:
    graph = load_graph(path, hard=hard)
    placed = place_layers(graph, resolve(config or DpuConfig()))
    cpu = Counter(graph.layers[i].op_type for i, p in enumerate(placed) if p.device == "CPU")
    return cpu, len(partition(graph, placed).dpu_subgraphs)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("form", ["exported", "hard"])
def test_cpu_operators_and_dpu_subgraphs(name: str, exporter: str, form: str) -> None:
    cpu, subgraphs = _verdict(MODELS / f"{name}_{exporter}.onnx", hard=form == "hard")
    want = EXPECTED[name][form]
    assert dict(cpu) == want["cpu_ops"]
    assert subgraphs == want["dpu_subgraphs"]


def test_hard_activations_stay_on_the_cpu_before_ip_4() -> None:
    cpu, _ = _verdict(MODELS / "mobilenetv3_torchscript.onnx", hard=False, config=DpuConfig(ip_version="3.4"))
    assert set(EXPECTED["mobilenetv3"]["ip_3_4"]["cpu_ops_include"]) <= set(cpu)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_chaining_the_parts_reproduces_the_original_model(name: str) -> None:
    path = MODELS / f"{name}_torchscript.onnx"
    original = onnx.load(str(path))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    want = run_model(original, {"input": x})
    graph = load_graph(path)
    got = run_partition(graph, partition(graph, place_layers(graph, resolve(DpuConfig()))), {"input": x})
    for output in graph.graph_outputs:
        np.testing.assert_allclose(got[output], want[output], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_exporter_does_not_change_the_verdict(name: str) -> None:
    """TorchScript and dynamo exports of one network: same DPU subgraphs, FPS within 5 %."""
    db = load_database()
    board = db.board("zcu104")
    results = []
    for exporter in EXPORTERS:
        for hard in (False, True):
            graph = load_graph(MODELS / f"{name}_{exporter}.onnx", hard=hard)
            results.append(Estimator(graph, board, db=db).estimate(DpuConfig()))
    script, script_hard, dynamo, dynamo_hard = results
    for a, b in ((script, dynamo), (script_hard, dynamo_hard)):
        assert a.dpu_subgraphs == b.dpu_subgraphs
        assert b.fps_single == pytest.approx(a.fps_single, rel=0.05)


def test_the_projects_own_int8_output_is_placed_as_its_float_graph(tmp_path: Path) -> None:
    """The QDQ model `explore compress -o` writes (what the vendor ONNX flow hands the compiler) gets the float
    model's verdict, not an island per QuantizeLinear/DequantizeLinear."""
    from explorer.compress.context import CompressionContext, CompressOptions
    from explorer.data.loaders import Dataset
    from explorer.evaluators.builtin import load_evaluator

    path = MODELS / "yolov8_torchscript.onnx"
    x = np.random.default_rng(1).standard_normal((4, 3, 64, 64)).astype(np.float32)
    data = Dataset({"input": x}, {"labels": np.zeros(4, dtype=np.int64)}, "random", "r4")
    ctx = CompressionContext(path, data, data, load_evaluator("classification"), tmp_path / "cache", hard=True)
    qdq = ctx.export(CompressOptions(quantize="dpu"))
    assert sum(n.op_type == "QuantizeLinear" for n in qdq.graph.node) > 20
    onnx.save(qdq, str(tmp_path / "int8.onnx"))
    assert _verdict(tmp_path / "int8.onnx", hard=False) == _verdict(path, hard=True)
