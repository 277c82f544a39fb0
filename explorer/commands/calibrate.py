"""`explore calibrate`: fit the latency model's board-level parameters to measurements of one board."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from explorer.commands.common import add_board_option, print_json
from explorer.errors import ExplorerError
from explorer.perf.measurements import Measurement
from explorer.tables import format_table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "calibrate",
        help="fit the latency model to measurements of one board (a profile for estimate and studies)",
        description="Fit the latency model's board-level parameters (DDR and port efficiency, per-layer overhead, "
        "host cost per runner call and per element, Arm speed) to measured rows, by least squares regularised "
        "toward the shipped fit. Prints each row's error before, after and left out of the fit.",
    )
    add_board_option(p)
    p.add_argument(
        "--measurements",
        required=True,
        action="append",
        metavar="FILE.csv|STUDY",
        help="measurements: a CSV (model, fps or latency_ms, threads, DpuConfig fields, ...; README: calibrate to your "
        "board), or a study (its file or output folder) whose trials have board runs recorded by `explore import-run`; "
        "repeat for several",
    )
    p.add_argument("-o", "--output", required=True, help="write the profile (YAML) here")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_calibrate)


def study_measurements(cfg: Any) -> tuple[str, list[Measurement]]:
    """(the study's board, its trials' board runs as measurements). Each measured design point's model, pruned as
    the trial pruned it, is written to OUTPUT/calibration/ so the profile can name it; a board run excludes
    pre/post-processing (run_on_board.py feeds frames directly), so the rows have none."""
    import onnx

    from explorer.export.measure import read_measured
    from explorer.study.design_metrics import compress_options, trial_compression
    from explorer.study.runner import load_records
    from explorer.study.search_space import DesignPoint
    from explorer.study.store import trial_folder

    runs = [
        (record, run)
        for record in load_records(cfg)
        if record.state == "COMPLETE" and record.design_point
        for run in [read_measured(trial_folder(cfg.store.output, record.number)).get("run")]
        if isinstance(run, dict)
    ]
    if not runs:
        raise ExplorerError(f"{cfg.path}: no trial has a board run yet (record one with `explore import-run`)")
    compression = trial_compression(cfg)
    folder = cfg.store.output / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[Measurement] = []
    for record, run in runs:
        point = DesignPoint.from_dict(record.design_point)
        _, graph, _ = compression.pruned(compress_options(point, cfg.quantization.calibration))
        model = folder / f"trial_{record.number:05d}.onnx"
        onnx.save(graph.model, str(model))
        source = f"board run on {run.get('board', '?')} ({run.get('runtime', 'vart')}), trial {record.number} of {cfg.path}"
        common: dict[str, Any] = {
            "model": model,
            "dpu": point.dpu.to_dict(),
            "split": point.split,
            "cpu_precision": point.cpu_precision,
            "source": source,
            "where": f"{cfg.path}: trial {record.number}",
        }
        rows.append(Measurement(metric="fps_single", value=float(run["fps_single"]), threads=1, **common))
        threads = run.get("threads")
        multi = int(threads) if isinstance(threads, int) and not isinstance(threads, bool) and threads > 1 else 2
        rows.append(Measurement(metric="fps_multi", value=float(run["fps_multi"]), threads=multi, **common))
    return cfg.board, rows


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from explorer.hardware.database import load_database
    from explorer.perf.calibrate import PARAMETERS, fit_profile, write_profile
    from explorer.perf.measurements import read_measurements

    db = load_database()
    board = db.board(args.board)
    rows = []
    for source in args.measurements:
        if source.endswith(".csv"):
            rows += read_measurements(source)
        else:
            from explorer.commands.study import resolve

            study_board, found = study_measurements(resolve(source))
            if study_board.lower() != board.name.lower():
                raise ExplorerError(f"--measurements {source}: the study is for {study_board}, not {board.name}")
            rows += found
    output = Path(args.output)
    if output.is_dir():
        raise ExplorerError(f"-o {output}: a folder; name the profile file, e.g. {output / 'profile.yaml'}")
    profile = fit_profile(board, rows, db)
    write_profile(profile, output)
    if args.json:
        print_json({**profile.to_dict(), "written": str(output)})
        return 0
    print(f"{len(rows)} measurement(s) on {board.name}; latency model before (shipped fit) and after this profile")
    table = [
        [
            r.where,
            r.model,
            r.metric,
            f"{r.measured:.4g}",
            f"{r.before:.4g}",
            _percent(r.error(r.before)),
            f"{r.after:.4g}",
            _percent(r.error(r.after)),
            _percent(r.error(r.leave_one_out)),
        ]
        for r in profile.rows
    ]
    header = ["row", "model", "metric", "measured", "before", "error", "after", "error", "left out"]
    print(format_table(header, table, [False, False, False, True, True, True, True, True, True]))
    medians = profile.medians()
    print("median |error|: " + ", ".join(f"{k.replace('_', ' ')} {_percent(v).lstrip('+')}" for k, v in medians.items()))
    if medians["leave_one_out"] is not None and medians["before"] is not None and medians["leave_one_out"] >= medians["before"]:
        print(
            "note: left out of the fit, the rows are predicted no better than by the shipped fit: their errors are "
            "not one board-level offset (check what each row timed: pre/post-processing, threads, runtime)"
        )
    print("parameters (shipped -> profile):")
    for name, meaning in PARAMETERS.items():
        print(f"  {name:28s} {profile.shipped[name]:10.4g} -> {profile.values[name]:10.4g}   {meaning}")
    shown = shlex.quote(str(output))
    print(f"wrote {output}; use it with `explore estimate ... --calibration {shown}` or `estimator: {{calibration: {shown}}}`")
    return 0
