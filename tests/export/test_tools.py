"""The generated files with the real tools. Each test runs only where its tool is present and is skipped
otherwise (CI has none of them): Vivado, the Vitis AI compiler, a board with the Vitis AI runtime.

- vivado: `DPU_IP_REPO` names the DPUCZDX8G IP folder. Builds the project and the block design (through
  validate_bd_design), not the hour-long implementation.
- vitis_ai: `DPU_EXPLORER_XMODEL` names a quantized .xmodel; compiles it for an exported design point.
- board: `DPU_EXPLORER_DEPLOY` names an exported deploy/ folder with its compiled model, on the board.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.export.parsers import parse_board_run
from explorer.export.writer import ExportRequest, export_design
from explorer.hardware.config import parse_dpu_config
from explorer.hardware.database import load_database


def _export(tmp_path: Path, board: str) -> Path:
    db = load_database()
    b = db.board(board)
    folder = tmp_path / "export"
    export_design(ExportRequest(parse_dpu_config({}, b, db=db), b), folder)
    return folder


@pytest.mark.vivado
@pytest.mark.skipif(shutil.which("vivado") is None or not os.environ.get("DPU_IP_REPO"), reason="needs Vivado and DPU_IP_REPO")
def test_block_design_validates_in_vivado(tmp_path: Path) -> None:
    folder = _export(tmp_path, os.environ.get("DPU_EXPLORER_BOARD", "kv260"))
    script = folder / "bd_only.tcl"
    script.write_text(
        "set dpu_explorer_dir [file dirname [file normalize [info script]]]\n"
        "source [file join $dpu_explorer_dir create_project.tcl]\nsource [file join $dpu_explorer_dir block_design.tcl]\n"
    )
    done = subprocess.run(["vivado", "-mode", "batch", "-nojournal", "-source", str(script)], cwd=folder,
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]


@pytest.mark.vitis_ai
@pytest.mark.skipif(
    shutil.which("vai_c_xir") is None or not os.environ.get("DPU_EXPLORER_XMODEL"),
    reason="needs vai_c_xir and DPU_EXPLORER_XMODEL",
)
def test_compile_script_in_vitis_ai(tmp_path: Path) -> None:
    folder = _export(tmp_path, os.environ.get("DPU_EXPLORER_BOARD", "kv260"))
    done = subprocess.run(["bash", str(folder / "deploy" / "compile.sh"), os.environ["DPU_EXPLORER_XMODEL"]],
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert list((folder / "deploy" / "compiled").glob("*.xmodel"))


@pytest.mark.board
@pytest.mark.skipif(
    importlib.util.find_spec("vart") is None or not os.environ.get("DPU_EXPLORER_DEPLOY"),
    reason="needs the Vitis AI runtime on a board and DPU_EXPLORER_DEPLOY",
)
def test_board_script_measures(tmp_path: Path) -> None:
    deploy = Path(os.environ["DPU_EXPLORER_DEPLOY"])
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(deploy / "run_on_board.py"), "--frames", "50", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = parse_board_run(out.read_text())
    assert result["source"] == "board" and result["fps_single"] > 0
    assert json.loads(out.read_text())["fingerprint"] == json.loads((deploy / "deploy.json").read_text())["fingerprint"]
