"""Deployment files: user and model strings reach the shell scripts as literal words."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from explorer.export.writer import ExportRequest, ModelParts, export_design
from explorer.hardware.config import parse_dpu_config
from explorer.hardware.database import load_database

HOSTILE = ['a"; touch pwned; "', "$(touch pwned)", "`touch pwned`", "it's"]


def tiny_model(inp: str, out: str) -> object:
    graph = helper.make_graph(
        [helper.make_node("Relu", [inp], [out])],
        "tiny",
        [helper.make_tensor_value_info(inp, TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 2])],
    )
    return helper.make_model(graph)


def test_model_and_tensor_names_cannot_inject_shell(tmp_path: Path) -> None:
    db = load_database()
    board = db.board("kv260")
    cut = HOSTILE[:2]
    parts = ModelParts(
        net_name=HOSTILE[2], dpu_part=tiny_model("x", cut[0]), cpu_part=tiny_model(cut[0], "y"),  # type: ignore[arg-type]
        cpu_part_int8=None, inputs={"x": [1, 2]}, cut_tensors=cut, outputs=["y"], split=1, cpu_precision="fp32",
        calibration={"x": np.zeros((2, 1, 2), np.float32)},
    )  # fmt: skip
    export_design(ExportRequest(parse_dpu_config({}, board, db=db), board, model=parts), tmp_path / "e")
    script = (tmp_path / "e" / "deploy" / "compile.sh").read_text()
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0
    lines = "\n".join(line for line in script.splitlines() if line.startswith(("NET=", "CUT_TENSORS=")))
    done = subprocess.run(["bash", "-c", lines + '\nprintf "%s\\n%s" "$NET" "$CUT_TENSORS"'], cwd=tmp_path,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout == f"{HOSTILE[2]}\n{', '.join(cut)}"
    assert not list(tmp_path.rglob("pwned"))
    with np.load(tmp_path / "e" / "deploy" / "model" / "calibration.npz") as data:
        assert data["x"].shape == (2, 1, 2)
