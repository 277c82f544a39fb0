"""Write everything one design point needs: the Vivado project scripts (or the Vitis-flow files), arch.json,
the model parts with the compile and board scripts, and a README.

`export_design(request, folder)` renders templates only (tcl/, deploy/) and copies static files; the
model parts come from `explorer.export.model`. Nothing here runs Vivado or Vitis AI.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from explorer import __version__
from explorer.datafiles import data_path
from explorer.errors import ExplorerError
from explorer.export.design import block_design, check_vivado_clock, vitis_connectivity
from explorer.hardware.config import DpuConfig, resolve
from explorer.hardware.database import Board, load_database
from explorer.hardware.dpu_conf import render_dpu_conf
from explorer.hardware.fingerprint import arch_json
from explorer.hardware.resources import FitReport, check_fit, estimate_resources
from explorer.templates import render

FLOWS = ("vivado", "vitis")
EXPORT_SCHEMA = "dpu-explorer/export/1"
BD_NAME = "dpu_system"
STATIC_DEPLOY_FILES = ("run_on_board.py", "quantize_dpu_part.py")


@dataclass(frozen=True)
class ModelParts:
    """The model cut at the design point's split: `dpu_part` (layers before the cut, for the Vitis AI
    compiler; None at split 0, where everything runs on the Arm) and `cpu_part` (the rest, for onnxruntime on
    the Arm cores; None when nothing is left)."""

    net_name: str
    dpu_part: onnx.ModelProto | None
    cpu_part: onnx.ModelProto | None
    cpu_part_int8: onnx.ModelProto | None
    inputs: dict[str, list[int]]
    cut_tensors: list[str]  # dpu_part outputs = cpu_part inputs (graph inputs used after the cut included)
    outputs: list[str]
    split: int | None
    cpu_precision: str
    calibration: dict[str, np.ndarray]


@dataclass(frozen=True)
class ExportRequest:
    config: DpuConfig
    board: Board
    flow: str = "vivado"
    project: str = "dpu_explorer"
    jobs: int = 4
    ip_repo: str = ""
    model: ModelParts | None = None
    origin: dict[str, Any] = field(default_factory=dict)  # study, trial, design point, estimated metrics
    ceilings: dict[str, float] = field(default_factory=dict)  # utilisation ceilings for the fit check (defaults if empty)


@dataclass(frozen=True)
class ExportResult:
    files: list[Path]
    fit: FitReport  # the resource estimate (source: model) against the board's device and the ceilings


def artifact_name(project: str) -> str:
    """A file-name-safe base name for the .bit/.hwh/.xsa (the project name itself stays as given)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", project).strip("._-")
    return slug or "dpu"


def check_project_name(project: str) -> None:
    """A project name is a file name (Vivado writes NAME.xpr in the export's vivado/ folder), never a path."""
    if not project or project.startswith("-") or "\x00" in project:
        raise ExplorerError(f"project name {project!r}: give a non-empty name that does not start with '-'")
    if "/" in project or project in (".", ".."):
        raise ExplorerError(
            f"project name {project!r}: a name, not a path (Vivado writes NAME.xpr inside the export folder); "
            f"for example --name {artifact_name(project)}"
        )


def board_part_pattern(board_part: str) -> str:
    """`vendor:board:part0:1.4` -> `vendor:board:part0:*` (the installed board-file version may differ)."""
    parts = board_part.split(":")
    return ":".join([*parts[:3], "*"]) if len(parts) == 4 else board_part


def _check_request(request: ExportRequest, folder: Path, force: bool) -> None:
    if request.flow not in FLOWS:
        raise ExplorerError(f"flow {request.flow!r}: choose one of {', '.join(FLOWS)}")
    check_project_name(request.project)
    if request.jobs < 1:
        raise ExplorerError(f"--jobs {request.jobs}: give at least 1")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise ExplorerError(f"{folder} exists and is not empty; choose another folder or pass --force")


def _deploy_model(model: ModelParts | None) -> dict[str, Any] | None:
    """deploy.json's description of the model parts (None for a hardware-only export)."""
    if model is None:
        return None
    return {
        "net_name": model.net_name,
        "xmodel": f"compiled/{model.net_name}.xmodel" if model.dpu_part is not None else None,
        "dpu_part": "model/dpu_part.onnx" if model.dpu_part is not None else None,
        "cpu_part": "model/cpu_part.onnx" if model.cpu_part is not None else None,
        "cpu_part_int8": "model/cpu_part_int8.onnx" if model.cpu_part_int8 is not None else None,
        "cpu_precision": model.cpu_precision,
        "inputs": model.inputs,
        "cut_tensors": model.cut_tensors,
        "outputs": model.outputs,
        "split": model.split,
        "calibration": "model/calibration.npz",
    }


def _write_files(folder: Path, files: dict[str, str], model: ModelParts | None) -> list[Path]:
    """The rendered files, the static deployment scripts and the model parts, written under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    (folder / "deploy" / "compile.sh").chmod(0o755)
    for name in STATIC_DEPLOY_FILES:
        target = folder / "deploy" / name
        shutil.copyfile(data_path("deploy", name), target)
        written.append(target)
    if model is not None:
        parts = folder / "deploy" / "model"
        parts.mkdir(parents=True, exist_ok=True)
        for name, part in (
            ("dpu_part.onnx", model.dpu_part),
            ("cpu_part.onnx", model.cpu_part),
            ("cpu_part_int8.onnx", model.cpu_part_int8),
        ):
            if part is not None:
                onnx.save(part, str(parts / name))
                written.append(parts / name)
        np.savez(str(parts / "calibration.npz"), **model.calibration)  # type: ignore[arg-type]
        written.append(parts / "calibration.npz")
    return written


def export_design(request: ExportRequest, folder: Path, force: bool = False) -> ExportResult:
    """Write the export of one design point into `folder`; returns the files written and the resource fit."""
    _check_request(request, folder, force)
    config, board = request.config, request.board
    spec = resolve(config, load_database())
    design = block_design(spec, board)  # checks the configuration is legal on this board
    if request.flow == "vivado":
        check_vivado_clock(config, board)
    arch = arch_json(spec)
    artifact = artifact_name(request.project)
    values: dict[str, Any] = {
        "cfg": config.to_dict(),
        "board": board,
        "board_part_pattern": board_part_pattern(board.board_part),
        "design": design,
        "fingerprint": arch.fingerprint_hex,
        "target": arch.target,
        "project": request.project,
        "artifact": artifact,
        "bd_name": BD_NAME,
        "jobs": request.jobs,
        "ip_repo": str(Path(request.ip_repo).expanduser().resolve()) if request.ip_repo else "",
        "dpu_vlnv": spec.ip.vlnv,
        "vitis_ai": spec.ip.vitis_ai,
    }
    files: dict[str, str] = {}
    if request.flow == "vivado":
        for name in ("build.tcl", "create_project.tcl", "block_design.tcl", "implement.tcl"):
            files[name] = render(f"{name}.j2", **values)
    else:
        files["vitis/dpu_conf.vh"] = render_dpu_conf(spec, board)
        files["vitis/prj_config"] = render("prj_config.j2", vitis=vitis_connectivity(config, board), **values)
    files["deploy/arch.json"] = arch.file_text()
    resources = estimate_resources(spec)
    fit = check_fit(resources.total, board.device, request.ceilings)
    estimate = {
        "source": "model",
        "resources": {k: resources.total.get(k) for k in ("lut", "ff", "bram36", "uram", "dsp")},
        **{k: v for k, v in request.origin.get("metrics", {}).items() if k in ("fps_single", "fps_multi", "latency_ms")},
    }
    manifest: dict[str, Any] = {
        "schema": EXPORT_SCHEMA,
        "generator": f"dpu-explorer {__version__}",
        "flow": request.flow,
        "board": board.name,
        "part": board.part,
        "project": request.project,
        "artifact": artifact,
        "dpu": config.to_dict(),
        "ip_params": design.dpu.params,
        "fingerprint": arch.fingerprint_hex,
        "target": arch.target,
        "estimate": estimate,
        "origin": request.origin,
    }
    deploy_model = _deploy_model(request.model)
    deploy: dict[str, Any] = {
        "schema": "dpu-explorer/deploy/1",
        "board": board.name,
        "fingerprint": arch.fingerprint_hex,
        "target": arch.target,
        "origin": {k: request.origin[k] for k in ("study", "study_name", "trial") if k in request.origin},
        "estimate": estimate,
        "model": deploy_model,
    }
    files["deploy/deploy.json"] = json.dumps(deploy, indent=1) + "\n"
    files["deploy/compile.sh"] = render("compile.sh.j2", model=deploy_model, **values)
    files["README.md"] = render(
        "README.md.j2", flow=request.flow, manifest=manifest, model=deploy_model, origin=request.origin, **values
    )
    written = _write_files(folder, files, request.model)
    manifest["files"] = sorted(str(p.relative_to(folder)) for p in [*written, folder / "export.json"])
    (folder / "export.json").write_text(json.dumps(manifest, indent=1, default=float) + "\n", encoding="utf-8")
    return ExportResult([*written, folder / "export.json"], fit)
