"""`explore validate`, `explore run` and `explore report` for study.yaml files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.errors import ExplorerError
from explorer.study.config import StudyConfig, load_study

if TYPE_CHECKING:
    from explorer.study.design_metrics import StudyContext


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("validate", help="check a study file and report every problem with its YAML path")
    p.add_argument("study", help="study.yaml")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("run", help="run (or resume) the Optuna study of a study file")
    p.add_argument("study", nargs="?", help="study.yaml (default: the bundled example, examples/pose/study_ultra96.yaml)")
    p.add_argument("--n-trials", type=int, help="total finished trials the study should hold (overrides the file)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds (overrides the file)")
    p.add_argument("--workers", type=int, default=1, help="processes working on the study (same storage)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not write the report after the run")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("report", help="write the HTML report and CSV of a study")
    p.add_argument(
        "study", nargs="?", help="study.yaml, or the study's output folder (default: the bundled example in ./explore-out)"
    )
    p.add_argument("-o", "--output", help="HTML file (default: OUTPUT/report.html)")
    p.set_defaults(func=cmd_report)


def example_study() -> Path:
    from explorer.datafiles import data_path

    return data_path("examples", "pose", "study_ultra96.yaml")


def resolve(study: str | None) -> StudyConfig:
    if study is None:  # the bundled example writes into the working directory, wherever it is installed
        cfg = load_study(example_study())
        return cfg.with_output(Path.cwd() / "explore-out" / cfg.store.study_name)
    path = Path(study)
    if path.is_dir():
        found = path / "study.yaml.resolved"
        if not found.is_file():
            raise ExplorerError(f"{path}: not a study output folder (no study.yaml.resolved); give the study file")
        cfg = load_study(Path(found.read_text().strip()))
        # the folder is where the study ran: the bundled example's file names another output than its run used
        return cfg if cfg.store.output.resolve() == path.resolve() else cfg.with_output(path)
    return load_study(path)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_study(args.study)
    from explorer.study.preflight import run_checks

    checked = run_checks(cfg)
    ctx, fit = checked.ctx, checked.fit
    shown = ", ".join(f"{o.metric} {checked.metrics.values[o.metric]:.4g}" for o in cfg.objectives)
    fit_text = (
        f"{fit.configurations} hardware configuration(s) checked until one fits the {ctx.board.device.name}"
        if fit.fitting
        else f"warning: {fit.message} (constraints.fit is off, so the study runs anyway)"
    )
    print(
        f"{args.study}: valid. Board {cfg.board}, {len(ctx.space.params)} parameters "
        f"({', '.join(ctx.space.names())}), objectives "
        f"{', '.join(f'{o.direction} {o.metric}' for o in cfg.objectives)}, sampler {cfg.run.sampler}, "
        f"{cfg.run.n_trials} trials, storage {cfg.store.url}.\n"
        f"  {fit_text}.\n"
        f"  one design point evaluated end to end: {shown} (performance: estimate; accuracy: measured)"
    )
    return 0


def measure_step(cfg: StudyConfig) -> StudyConfig:
    """The study's `measure:` step: run its best feasible design points not yet measured on the host (explore
    measure), then, with `recalibrate`, refit a calibration profile from all its measurements. Returns the
    configuration later trials use (with the new profile when recalibrated). A design point the host cannot
    run is skipped with the reason; an unreachable host ends the step; the study itself is never lost."""
    from explorer.commands.calibrate import study_measurements
    from explorer.commands.export import measure_trial, pareto_to_measure
    from explorer.export.measure import read_measured
    from explorer.study.store import trial_folder

    settings = cfg.measure
    if settings is None:
        return cfg
    try:
        best = pareto_to_measure(cfg, settings.top)
    except ExplorerError as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return cfg
    for trial in best:
        if "run" in read_measured(trial_folder(cfg.store.output, trial)):
            continue
        try:
            print(f"measure: {measure_trial(cfg, trial, settings)}")
        except ExplorerError as exc:
            print(f"measure: trial {trial} not measured: {exc}", file=sys.stderr)
            if str(exc).startswith("cannot reach"):
                break
    if not settings.recalibrate:
        return cfg
    from explorer.hardware.database import load_database
    from explorer.perf.calibrate import fit_profile, write_profile

    try:
        board_name, rows = study_measurements(cfg)
    except ExplorerError as exc:
        print(f"measure: not recalibrated: {exc}", file=sys.stderr)
        return cfg
    # The rows are this study's own model (its pruned variants), and the profile times this study's trials: the
    # model's own error is what it is for, so the priors hold at full width (no cross-validation over networks).
    profile = fit_profile(load_database().board(board_name), rows, strength=1.0, strength_by="the study (its own model's rows)")
    path = cfg.store.output / "calibration" / "profile.yaml"
    write_profile(profile, path)
    medians = profile.medians()
    print(
        f"measure: recalibrated on {len(rows)} measurement(s) (median |error| {medians['before']:.1%} -> "
        f"{medians['after']:.1%}); trials from now on are timed with {path}"
    )
    return dataclasses.replace(cfg, estimator=dataclasses.replace(cfg.estimator, calibration=path))


def cmd_run(args: argparse.Namespace) -> int:
    cfg = resolve(args.study)
    changes: dict[str, object] = {}
    if args.n_trials is not None:
        if args.n_trials < 1:
            raise ExplorerError("--n-trials must be at least 1")
        changes["n_trials"] = args.n_trials
    if args.timeout is not None:
        if args.timeout <= 0:
            raise ExplorerError("--timeout must be positive")
        changes["timeout"] = args.timeout
    if args.workers < 1:
        raise ExplorerError("--workers must be at least 1")
    cfg = cfg.with_run(**changes)
    from explorer.study.preflight import preflight
    from explorer.study.runner import handle_termination, interrupt_reason, run_study
    from explorer.study.store import finished_count

    handle_termination()
    prepare_output(cfg)
    ctx: StudyContext | None = preflight(cfg)
    try:
        if cfg.measure is not None and cfg.measure.every and cfg.run.timeout is None:
            # measure every `every` finished trials: the study runs in steps, each resuming the last
            target, done = cfg.run.n_trials, 0
            while True:
                step = cfg.with_run(n_trials=min(target, done + cfg.measure.every))
                study = run_study(step, args.workers, progress=not args.no_progress, ctx=ctx)
                before, done = done, finished_count(study)
                if done >= target or done <= before:  # the goal, or a step that finished nothing more
                    break
                measured = measure_step(cfg)
                if measured is not cfg:  # recalibrated: later trials are timed with the new profile
                    cfg, ctx = measured, None
        else:
            study = run_study(cfg, args.workers, progress=not args.no_progress, ctx=ctx)
    except KeyboardInterrupt as exc:
        print(
            f"\n{interrupt_reason(exc)}: the running trial is recorded as failed and the study in {cfg.store.output} is "
            "consistent; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    if cfg.measure is not None:
        cfg = measure_step(cfg)
    done = finished_count(study)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(
        f"study {cfg.store.study_name}: {done} finished trials ({len(complete)} complete, "
        f"{done - len(complete)} failed) in {cfg.store.output}"
    )
    if not args.no_report and complete:
        from explorer.report.html import write_report

        html = write_report(cfg)
        print(f"report: {html}")
    verdict = outcome(study)
    if verdict:
        raise ExplorerError(verdict)
    return 0


def prepare_output(cfg: StudyConfig) -> None:
    """Create the output folder and record the study file in it; a clear error when that is impossible."""
    try:
        cfg.store.output.mkdir(parents=True, exist_ok=True)
        (cfg.store.output / "study.yaml.resolved").write_text(str(cfg.path) + "\n")
    except OSError as exc:
        raise ExplorerError(
            f"cannot write the output folder {cfg.store.output}: {exc.strerror}; set `output:` in the study to a writable folder"
        ) from None


def outcome(study: Any) -> str | None:
    """Why a finished run did not produce a usable design (None when it did): every trial failed, or none
    was feasible; names the most frequent failure or the constraint that ruled the designs out."""
    from explorer.study.record import TrialRecord

    records = [TrialRecord.read(t) for t in study.trials]
    complete = [r for r in records if r.state == "COMPLETE"]
    if not records:
        return None
    if not complete:
        reasons = Counter(r.fail_reason or "unknown" for r in records if r.state == "FAIL")
        reason, count = reasons.most_common(1)[0] if reasons else ("unknown", 0)
        return f"every trial failed ({count} of {len(records)} with: {reason})"
    if any(r.feasible for r in complete):
        return None
    violated = Counter(name for r in complete for name, v in r.constraints.items() if v > 0)
    worst = ", ".join(f"{name} ({n} trials)" for name, n in violated.most_common(3))
    return f"no feasible design among {len(complete)} complete trials; the constraints violated most: {worst}"


def cmd_report(args: argparse.Namespace) -> int:
    cfg = resolve(args.study)
    from explorer.report.html import write_report

    path = write_report(cfg, Path(args.output) if args.output else None)
    print(f"wrote {path} and {path.with_name('trials.csv')}")
    return 0
