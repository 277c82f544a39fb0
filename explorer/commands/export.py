"""`explore export`, `explore import-build`, `explore import-run` and `explore measure`."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.commands.common import (
    add_board_option,
    add_dpu_options,
    dpu_config_from_args,
    dpu_options_given,
    json_number,
    parse_ceilings,
    print_json,
)
from explorer.errors import ExplorerError

if TYPE_CHECKING:
    from explorer.export.measure import StudyTrial
    from explorer.study.config import MeasureSection, StudyConfig


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export",
        help="write the Vivado project (or Vitis-flow files), arch.json and deployment scripts of one design point",
        description="Export a study trial (--trial N or --best OBJECTIVE), or a DPU configuration (--dpu FILE / "
        "DPU flags with --board) without a study.",
    )
    p.add_argument(
        "study",
        nargs="?",
        help="study.yaml or its output folder (default: the bundled example study in ./explore-out; omit with --board)",
    )
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--trial", type=int, help="trial number")
    choice.add_argument("--best", metavar="OBJECTIVE", help="the feasible trial with the best value of this objective")
    p.add_argument("-o", "--output", required=True, help="folder to write (must be empty unless --force)")
    p.add_argument("--flow", choices=("vivado", "vitis"), default="vivado", help="Vivado project scripts, or Vitis-flow files")
    p.add_argument("--name", help="Vivado project name (default: the study name and trial)")
    p.add_argument("--jobs", type=int, default=4, help="parallel jobs for synthesis and implementation (default 4)")
    p.add_argument("--dpu-ip-repo", default="", help="folder holding the DPUCZDX8G IP (else DPU_IP_REPO at build time)")
    p.add_argument("--no-model", action="store_true", help="hardware and arch.json only: skip the model parts")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    add_board_option(p, required=False)
    add_dpu_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import-build", help="record the measured resources and timing of a built export")
    p.add_argument("folder", help="the export folder (with reports/utilization.rpt and reports/timing_summary.rpt)")
    p.add_argument("--utilization", help="report_utilization file (default: FOLDER/reports/utilization.rpt)")
    p.add_argument("--timing", help="report_timing_summary file (default: FOLDER/reports/timing_summary.rpt)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=cmd_import_build)

    p = sub.add_parser("import-run", help="record the FPS and latency measured on the board (run_on_board.py JSON)")
    p.add_argument("file", help="the JSON that deploy/run_on_board.py printed")
    p.add_argument("--study", help="study.yaml (default: the one the export came from)")
    p.add_argument("--trial", type=int, help="trial number (default: the exported trial)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=cmd_import_run)

    p = sub.add_parser(
        "measure",
        help="export trials of a study, run them on a host over SSH and record what was measured",
        description="For each trial: export its deployment folder, check the host's DPU fingerprint (design points "
        "with a DPU part; the xmodel must be compiled, see --compile-command), copy it with scp, run run_on_board.py "
        "there with ssh and record the result as `explore import-run` does. A design point that runs entirely on "
        "the CPU needs no DPU and is measured on whatever host is given.",
    )
    p.add_argument("study", help="study.yaml or its output folder")
    p.add_argument("--trial", type=int, action="append", default=[], help="trial number (repeat for several)")
    p.add_argument("--pareto", action="store_true", help="the feasible Pareto-optimal trials")
    p.add_argument("--top", type=int, help="with --pareto: at most this many, best first by the first objective")
    p.add_argument("--host", required=True, help="[USER@]HOST, or a Host of your SSH configuration")
    p.add_argument("--port", type=int, help="SSH port")
    p.add_argument("--identity", help="SSH private key (ssh -i)")
    p.add_argument("--ssh-config", help="another SSH configuration file (ssh -F)")
    p.add_argument("--remote-dir", default="dpu-explorer-measure", help="folder on the host (default: ~/dpu-explorer-measure)")
    p.add_argument("--remote-python", default="python3", help="the host's Python with numpy and onnxruntime (default python3)")
    p.add_argument("--frames", type=int, default=200, help="frames per run (default 200)")
    p.add_argument("--threads", type=int, default=2, help="threads of the multi-threaded run (default 2)")
    p.add_argument(
        "--compile-command",
        help="run in each exported deploy/ folder before copying (e.g. your Vitis AI docker running compile.sh); "
        "design points with a DPU part need the compiled xmodel",
    )
    p.set_defaults(func=cmd_measure)


def cmd_export(args: argparse.Namespace) -> int:
    from explorer.export.writer import ExportRequest, export_design
    from explorer.hardware.database import load_database

    db = load_database()
    start = time.perf_counter()
    # no study and no board: the bundled example study, as for `explore run` and `explore report`
    if args.study is None and args.board:
        if args.trial is not None or args.best:
            raise ExplorerError("--trial/--best export a study's trial; drop --board (and the DPU options), or give the study")
        board = db.board(args.board)
        config = dpu_config_from_args(args, board, db)
        name = args.name or "dpu_explorer"
        request = ExportRequest(
            config, board, args.flow, name, args.jobs, args.dpu_ip_repo, ceilings=parse_ceilings(args.ceiling)
        )
    else:
        if args.board or dpu_options_given(args):
            raise ExplorerError(
                "a study export takes its board and DPU configuration from the trial; drop --board/--dpu/DPU flags"
            )
        if args.trial is None and not args.best:
            raise ExplorerError(
                "give --trial N or --best OBJECTIVE to export a study's trial, or --board B with --dpu FILE or DPU flags"
            )
        if args.ceiling:
            raise ExplorerError("a study export uses the study's ceilings; drop --ceiling")
        request = _study_request(args)
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise ExplorerError(f"-o {args.output}: exists and is not a folder; give a folder to write the export into")
    result = export_design(request, Path(args.output), force=args.force)
    fit = result.fit
    if not fit.fits:
        print(
            f"warning: the resource estimate (source: model) exceeds the ceilings of {request.board.device.name}: "
            + ", ".join(
                f"{k} {r.used:.0f} of {r.available} ({100 * r.utilization:.0f} %, ceiling {100 * r.ceiling:.0f} %)"
                for k, r in fit.resources.items()
                if not r.fits
            ),
            file=sys.stderr,
        )
    elapsed = time.perf_counter() - start
    origin = request.origin
    where = f"trial {origin['trial']} of study {origin['study_name']} ({origin['why']})" if origin else "the given configuration"
    print(f"exported {where} for {request.board.name} into {args.output} ({len(result.files)} files, {elapsed:.2f} s)")
    out = shlex.quote(args.output)
    if args.flow == "vivado":
        print(f"next: cd {out} && vivado -mode batch -source build.tcl; then explore import-build {out}")
    else:
        vitis = shlex.quote(str(Path(args.output) / "vitis"))
        print(f"next: use dpu_conf.vh and prj_config in {vitis} with the DPU-PYNQ or DPU-TRD make flow")
    return 0


def _study_request(args: argparse.Namespace) -> Any:
    from explorer.commands.study import resolve
    from explorer.export.model import model_parts
    from explorer.export.writer import ExportRequest, artifact_name
    from explorer.hardware.database import load_database
    from explorer.study.design_metrics import check_trial_model, compress_options, trial_compression
    from explorer.study.record import select_trial
    from explorer.study.runner import load_records
    from explorer.study.search_space import DesignPoint

    cfg = resolve(args.study)
    selected = select_trial(cfg, load_records(cfg), args.trial, args.best)
    chosen = selected.record
    point = DesignPoint.from_dict(chosen.design_point)
    board = load_database().board(cfg.board)
    name = args.name or artifact_name(f"{cfg.store.study_name}_t{chosen.number}")
    origin = {
        "study": str(cfg.path),
        "study_name": cfg.store.study_name,
        "trial": chosen.number,
        "why": selected.why,
        "design_point": chosen.design_point,
        "metrics": {k: v for k, v in chosen.metrics.items() if math.isfinite(v)},
        "sources": chosen.sources,
    }
    parts = None
    if not args.no_model:
        compression, options = trial_compression(cfg), compress_options(point, cfg)
        check_trial_model(compression, options, chosen.details, chosen.number)
        parts = model_parts(compression, options, artifact_name(Path(cfg.model.path).stem))
    return ExportRequest(
        point.dpu, board, args.flow, name, args.jobs, args.dpu_ip_repo, parts, origin, dict(cfg.constraints.ceilings)
    )


def _finished_trial(study: str, trial: int) -> StudyTrial:
    """Finished trial `trial` of `study`, as the measurement store names it (an error when there is none)."""
    from explorer.commands.study import resolve

    cfg = resolve(study)
    where = _study_trial(cfg, trial)
    if not where.folder.is_dir():
        raise ExplorerError(f"study {cfg.store.study_name!r} has no finished trial {trial} (no {where.folder})")
    return where


def _study_trial(cfg: StudyConfig, trial: int) -> StudyTrial:
    from explorer.export.measure import StudyTrial
    from explorer.study.store import trial_folder

    folder = trial_folder(cfg.store.output, trial)
    return StudyTrial(Path(cfg.store.output), cfg.store.study_name, Path(cfg.model.path), cfg.board, trial, folder)


def _trial(value: Any, what: str) -> int:
    from explorer.export.parsers import trial_number

    if not trial_number(value):
        raise ExplorerError(f"{what} must be a trial number (an integer >= 0), got {value!r}")
    return int(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cmd_import_build(args: argparse.Namespace) -> int:
    from explorer.export.measure import build_measurement, read_manifest, record, record_trial

    folder = Path(args.folder)
    payload = build_measurement(
        folder, Path(args.utilization) if args.utilization else None, Path(args.timing) if args.timing else None
    )
    recorded = [record(folder, "build", payload)]
    origin = read_manifest(folder).get("origin", {})
    if origin.get("study") and origin.get("trial") is not None:
        where = _finished_trial(origin["study"], _trial(origin["trial"], "export.json origin.trial"))
        recorded.append(record_trial(where, "build", payload))
    places = [place for place, _ in recorded]
    for note in dict.fromkeys(note for _, note in recorded if note):
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print_json({k: (json_number(v) if isinstance(v, float) else v) for k, v in payload.items()})
        return 0
    print(f"build of {folder}: {payload['source']}")
    print(f"{'resource':<8} {'estimate (model)':>17} {'measured':>10} {'error':>8}")
    for kind, estimate in payload["estimate"].items():
        measured = payload["resources"].get(kind)
        error = (estimate - measured) / measured * 100 if measured else None
        print(f"{kind:<8} {_fmt(estimate):>17} {_fmt(measured):>10} {(_fmt(error) + ' %') if error is not None else '-':>8}")
    state = "met" if payload["timing_met"] else "NOT met"
    print(
        f"timing {state}: WNS {_fmt(payload['wns_ns'])} ns, WHS {_fmt(payload['whs_ns'])} ns; "
        f"DPU clock {payload['clock_mhz']} MHz, would close at {_fmt(payload['dpu_fmax_mhz'])} MHz (measured)"
    )
    print("recorded in " + ", ".join(str(p) for p in places))
    return 0


def cmd_import_run(args: argparse.Namespace) -> int:
    import json

    from explorer.export.measure import record_trial, run_measurement

    payload = run_measurement(Path(args.file))
    origin = payload.get("origin") or {}
    study = args.study or origin.get("study")
    trial = args.trial if args.trial is not None else origin.get("trial")
    if not study or trial is None:
        raise ExplorerError(
            f"{args.file} does not name a study trial (it came from an export without a study); pass --study and --trial"
        )
    where = _finished_trial(study, _trial(trial, "--trial" if args.trial is not None else f"{args.file}: origin.trial"))
    folder = where.folder
    place, note = record_trial(where, "run", payload)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print_json(payload)
        return 0
    estimate: dict[str, Any] = {}
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        estimate = json.loads(metrics_file.read_text()).get("metrics", {})
    print(f"board run on {payload.get('board')} ({payload.get('runtime', 'vart')}, {payload.get('frames')} frames): measured")
    print(f"{'metric':<12} {'estimate (model)':>17} {'measured':>10}")
    rows = (
        ("fps_single", payload["fps_single"]),
        ("fps_multi", payload["fps_multi"]),
        ("latency_ms", payload["latency_ms"]["median"]),
    )
    for key, measured in rows:
        print(f"{key:<12} {_fmt(estimate.get(key)):>17} {_fmt(measured):>10}")
    print(f"recorded in {place}")
    return 0


def pareto_to_measure(cfg: StudyConfig, top: int | None) -> list[int]:
    """The feasible Pareto-optimal trials, best first by the first objective, at most `top`."""
    from explorer.report.load import load_info

    info = load_info(cfg)
    if not info.pareto:
        raise ExplorerError(f"{cfg.path}: no feasible Pareto-optimal trial to measure")
    order = {r.number: r.values[0] for r in info.rows}
    sign = -1.0 if info.objectives[0][1] == "maximize" else 1.0
    ranked = sorted(info.pareto, key=lambda n: sign * order[n])
    return ranked[:top] if top else ranked


def _measure_trials(args: argparse.Namespace, cfg: StudyConfig) -> list[int]:
    if args.trial and args.pareto:
        raise ExplorerError("give --trial N (repeatable) or --pareto, not both")
    if args.trial:
        return list(dict.fromkeys(args.trial))
    if not args.pareto:
        raise ExplorerError("choose what to measure: --trial N (repeatable) or --pareto [--top K]")
    if args.top is not None and args.top < 1:
        raise ExplorerError(f"--top {args.top}: measure at least 1 trial")
    return pareto_to_measure(cfg, args.top)


def measure_trial(cfg: StudyConfig, trial: int, settings: MeasureSection) -> str:
    """Export `trial` of the study, run it on the host of `settings` (a MeasureSection) and record the run;
    returns a line for the user. Raises ExplorerError when it cannot be measured there (nothing recorded)."""
    import subprocess
    import tempfile

    from explorer.export.measure import record_trial
    from explorer.export.parsers import parse_board_run
    from explorer.export.remote import Host, check_fingerprint, plain_remote_path, run_remote, safe_name
    from explorer.export.writer import export_design

    host = Host(settings.host, settings.port, settings.identity, settings.ssh_config)
    remote_dir = plain_remote_path(f"{settings.remote_dir.rstrip('/')}/{safe_name(cfg.store.study_name)}")
    # the output folder names the study as it ran (the bundled example's output is not where its file says)
    ran = cfg.store.output if (cfg.store.output / "study.yaml.resolved").is_file() else cfg.path
    request_args = argparse.Namespace(
        study=str(ran), trial=trial, best=None, name=None, flow="vivado", jobs=1, dpu_ip_repo="", no_model=False
    )
    with tempfile.TemporaryDirectory(prefix=f"measure-t{trial}-") as tmp:
        folder = Path(tmp) / "export"
        export_design(_study_request(request_args), folder)
        deploy_dir = folder / "deploy"
        deploy = json.loads((deploy_dir / "deploy.json").read_text())
        checked = "no DPU part: runs on the host's CPU"
        if deploy["model"].get("dpu_part"):
            checked = check_fingerprint(host, str(deploy["fingerprint"]), trial)
            if settings.compile_command:
                subprocess.run(settings.compile_command, shell=True, cwd=deploy_dir, check=False)
            if not (deploy_dir / deploy["model"]["xmodel"]).is_file():
                raise ExplorerError(
                    f"trial {trial} has a DPU part and no compiled {deploy['model']['xmodel']}: give a compile command "
                    "(for example your Vitis AI docker running deploy/compile.sh)"
                )
        deploy_dir = deploy_dir.rename(Path(tmp) / f"trial_{trial:05d}")
        result_file = Path(tmp) / "result.json"
        run_remote(host, deploy_dir, remote_dir, settings.remote_python, settings.frames, settings.threads, result_file)
        payload = parse_board_run(result_file.read_text())
        payload["measured_with"] = f"explore measure --host {settings.host}"
        place, note = record_trial(_study_trial(cfg, trial), "run", payload)
    if note:
        print(f"note: {note}", file=sys.stderr)
    where = f"{payload.get('host')} ({payload.get('cpu')}, {payload.get('runtime')})"
    return (
        f"trial {trial}: fps_single {payload['fps_single']:.1f}, fps_multi {payload['fps_multi']:.1f} "
        f"(measured on {where}; {checked}); recorded in {place}"
    )


def cmd_measure(args: argparse.Namespace) -> int:
    from explorer.commands.study import resolve
    from explorer.study.config import MeasureSection

    if args.frames < 1 or args.threads < 1:
        raise ExplorerError("--frames and --threads must be at least 1")
    cfg = resolve(args.study)
    settings = MeasureSection(
        args.host,
        args.port,
        Path(args.identity) if args.identity else None,
        Path(args.ssh_config) if args.ssh_config else None,
        args.remote_dir,
        args.remote_python,
        args.frames,
        args.threads,
        args.compile_command,
    )
    for trial in _measure_trials(args, cfg):
        print(measure_trial(cfg, trial, settings))
    return 0
