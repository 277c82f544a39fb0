"""`explore calibrate`: fit the latency model's board-level parameters to measurements of one board."""

from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path
from typing import Any

from explorer.commands.common import add_board_option, print_json
from explorer.errors import ExplorerError
from explorer.perf.measurements import Measurement
from explorer.tables import format_table


def _strength(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected auto or a number from 0 to 1, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "calibrate",
        help="fit the latency model to measurements of one board (a profile for estimate and studies)",
        description="Fit the latency model's board-level parameters (DDR and port efficiency, per-layer overhead, "
        "how much busy cores slow each other, host cost per runner call and per element, Arm speed) to measured "
        "rows, by least squares regularised "
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
    p.add_argument(
        "--strength",
        type=_strength,
        default=None,
        metavar="auto|S",
        help="how far the fit may move from the shipped one, a multiplier of every prior spread from 0 (keep the "
        "shipped fit) to 1; default auto: chosen by cross-validation over the measured networks (1 with one network)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser(
        "measurements",
        help="list a study's recorded measurements (board runs, builds), or write them as a calibration CSV",
        description="Every measurement recorded for a study by `explore import-run`, `explore import-build` and "
        "`explore measure` (OUTPUT/measurements.jsonl, history included), beside the model's estimate. --csv writes "
        "the board runs in the CSV format `explore calibrate --measurements` reads, with each trial's pruned model.",
    )
    p.add_argument("study", help="the study file or its output folder")
    p.add_argument("--csv", metavar="FILE", help="write the board runs as a measurements CSV here")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(func=cmd_measurements)


def _store_runs(cfg: Any) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(trial, design point, run) for every board run of the study: all of the store's run entries (history
    included), or, for a study recorded before the store existed, each trial's latest run in measured.json."""
    from explorer.export.measure import read_measured, read_store
    from explorer.study.runner import load_records
    from explorer.study.store import trial_folder

    entries, _ = read_store(cfg.store.output)
    if entries:
        return [
            (int(e["trial"]), e["design_point"], {**e["measured"], **{k: e.get(k) for k in ("board", "runtime", "threads")}})
            for e in entries
            if e.get("kind") == "run" and isinstance(e.get("design_point"), dict) and isinstance(e.get("measured"), dict)
        ]
    runs = []
    for record in load_records(cfg):
        run = read_measured(trial_folder(cfg.store.output, record.number)).get("run")
        if record.state == "COMPLETE" and record.design_point and isinstance(run, dict):
            latency = run.get("latency_ms")
            median = latency.get("median") if isinstance(latency, dict) else latency
            runs.append((record.number, record.design_point, {**run, "latency_ms": median}))
    return runs


def study_measurements(cfg: Any) -> tuple[str, list[Measurement]]:
    """(the study's board, its trials' board runs as measurements). Each measured design point's model, pruned as
    the trial pruned it, is written to OUTPUT/calibration/ so the profile can name it; a board run excludes
    pre/post-processing (run_on_board.py feeds frames directly), so the rows have none."""
    import onnx

    from explorer.study.design_metrics import check_trial_model, compress_options, trial_compression
    from explorer.study.runner import load_records
    from explorer.study.search_space import DesignPoint

    runs = _store_runs(cfg)
    if not runs:
        raise ExplorerError(
            f"{cfg.path}: no trial has a board run yet (record one with `explore import-run` or `explore measure`)"
        )
    compression = trial_compression(cfg)
    details = {r.number: r.details for r in load_records(cfg)}  # what each trial's measured model kept
    folder = cfg.store.output / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[Measurement] = []
    written: set[int] = set()  # a trial measured more than once is pruned once
    for trial, design_point, run in runs:
        point = DesignPoint.from_dict(design_point)
        model = folder / f"trial_{trial:05d}.onnx"
        if trial not in written:
            options = compress_options(point, cfg)
            check_trial_model(compression, options, details.get(trial), trial)
            _, graph, _ = compression.pruned(options)
            onnx.save(graph.model, str(model))
            written.add(trial)
        source = f"board run on {run.get('board') or '?'} ({run.get('runtime') or 'vart'}), trial {trial} of {cfg.path}"
        common: dict[str, Any] = {
            "model": model,
            "dpu": point.dpu.to_dict(),
            "split": point.split,
            "cpu_precision": point.cpu_precision,
            "source": source,
            "where": f"{cfg.path}: trial {trial}",
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
    profile = fit_profile(board, rows, db, strength=args.strength)
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
    strength = profile.strength
    scores = ", ".join(f"{k:g}: {v:.2g}" for k, v in strength.scores.items())
    line = f"strength of the fit {strength.value:g} (x every prior spread), by {strength.chosen_by}"
    if scores:
        line += f"; mean squared log error by strength {scores} (standard error {strength.standard_error:.2g})"
    print(line)
    if strength.value == 0 and not strength.given:
        print(
            "note: fitted to some networks, the profile predicts the others no better than the shipped fit: the "
            "networks disagree on how this board differs, so the profile keeps the shipped values"
        )
    print("parameters (shipped -> profile):")
    for name, meaning in PARAMETERS.items():
        print(f"  {name:28s} {profile.shipped[name]:10.4g} -> {profile.values[name]:10.4g}   {meaning}")
    shown = shlex.quote(str(output))
    print(f"wrote {output}; use it with `explore estimate ... --calibration {shown}` or `estimator: {{calibration: {shown}}}`")
    return 0


def cmd_measurements(args: argparse.Namespace) -> int:
    import sys

    from explorer.commands.study import resolve
    from explorer.export.measure import STORE_FILE, read_store
    from explorer.perf.measurements import write_measurements

    cfg = resolve(args.study)
    entries, bad = read_store(cfg.store.output)
    if bad:
        print(f"note: {bad} line(s) of {cfg.store.output / STORE_FILE} could not be read and are skipped", file=sys.stderr)
    if args.csv:
        _, rows = study_measurements(cfg)
        write_measurements(rows, args.csv)
        print(
            f"wrote {len(rows)} row(s) to {args.csv}; fit them with `explore calibrate --board {shlex.quote(cfg.board)} "
            f"--measurements {shlex.quote(args.csv)} -o PROFILE.yaml`",
            file=sys.stderr if args.json else sys.stdout,
        )
    if args.json:
        print_json({"study": cfg.store.study_name, "store": str(cfg.store.output / STORE_FILE), "entries": entries})
        return 0
    if not entries:
        print(f"no measurements recorded for study {cfg.store.study_name!r} yet ({cfg.store.output / STORE_FILE})")
        return 0
    table = []
    for e in entries:
        measured, estimate = e.get("measured") or {}, e.get("estimate") or {}
        keys = ("fps_single", "fps_multi", "latency_ms") if e.get("kind") == "run" else ("lut", "bram36", "dsp")
        what = ", ".join(f"{k} {_number(measured.get(k))} (model {_number(estimate.get(k))})" for k in keys)
        if e.get("kind") == "build":
            what += f", timing {'met' if measured.get('timing_met') else 'not met'}"
        table.append([str(e.get("recorded", "?")), str(e.get("trial")), str(e.get("kind")), str(e.get("source")), what])
    print(f"{len(entries)} measurement(s) of study {cfg.store.study_name!r} ({cfg.store.output / STORE_FILE}):")
    print(format_table(["recorded", "trial", "kind", "source", "measured (estimate)"], table, [False, True, False, False, False]))
    return 0


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:,.0f}" if isinstance(value, int) or abs(value) >= 1000 else f"{value:.3g}"
