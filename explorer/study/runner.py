"""The study loop: ask, evaluate, tell, on Optuna storage (a journal file by default).

Resource overuse and the other constraints go through `trial.set_constraint` (<= 0 feasible). A trial
that fails is recorded with its reason and the study goes on. The study runs until it holds `n_trials`
finished trials, so rerunning the same command resumes it; Ctrl-C records the running trial as failed
("interrupted") and leaves a consistent study. Several processes can work on one storage.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from explorer.errors import ExplorerError
from explorer.export.templates import render_dpu_conf
from explorer.study.config import StudyConfig
from explorer.study.evaluate import Metrics, StudyContext
from explorer.study.space import SearchSpace, design_point, suggest

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)


def storage_file(storage: str) -> Path | None:
    """The local file of a journal or SQLite storage (None for a server)."""
    for prefix in ("journal:", "sqlite:///"):
        if storage.startswith(prefix):
            return Path(storage[len(prefix) :])
    return None


def storage_for(cfg: StudyConfig) -> optuna.storages.BaseStorage | str:
    path = storage_file(cfg.storage)
    if path is not None and cfg.storage.startswith("journal:"):
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        backend = JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    return cfg.storage


def make_sampler(cfg: StudyConfig, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(8, cfg.n_trials // 8)))
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "grid":
        grid: dict[str, list[Any]] = {}
        for p in space.params:
            if p.kind == "categorical":
                grid[p.name] = list(p.choices)
            elif p.step:
                count = round((p.high - p.low) / p.step) + 1
                values = [p.low + i * p.step for i in range(count)]
                grid[p.name] = [int(v) for v in values] if p.kind == "int" else [round(v, 10) for v in values]
            elif p.kind == "int":
                grid[p.name] = list(range(int(p.low), int(p.high) + 1))
            else:
                raise ExplorerError(f"grid sampler: parameter {p.name} is continuous; give it a step or choices")
        return optuna.samplers.GridSampler(grid, seed=seed)
    try:
        return optuna.samplers.GPSampler(seed=seed)
    except ImportError as exc:
        raise ExplorerError("the gp sampler needs torch (pip install torch==2.13.0, the CPU build)") from exc


def open_study(cfg: StudyConfig, space: SearchSpace, seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=cfg.study_name,
        storage=storage_for(cfg),
        sampler=make_sampler(cfg, space, seed),
        directions=[
            optuna.study.StudyDirection.MINIMIZE if o.direction == "minimize" else optuna.study.StudyDirection.MAXIMIZE
            for o in cfg.objectives
        ],
        load_if_exists=True,
    )
    meta = {
        "objectives": [[o.metric, o.direction] for o in cfg.objectives],
        "board": cfg.board,
        "model": str(cfg.model),
        "study_file": str(cfg.path),
        "evaluator": cfg.evaluator,
    }
    if study.user_attrs.get("explorer") != meta:
        if study.user_attrs.get("explorer") and [tuple(x) for x in study.user_attrs["explorer"]["objectives"]] != [
            (o.metric, o.direction) for o in cfg.objectives
        ]:
            raise ExplorerError(
                f"the study {cfg.study_name!r} in {cfg.storage} was created with other objectives "
                f"({study.user_attrs['explorer']['objectives']}); use another output folder or study_name"
            )
        study.set_user_attr("explorer", meta)
    return study


def trial_folder(cfg: StudyConfig, number: int) -> Path:
    """Where trial `number` keeps its artifacts (arch.json, metrics, measurements)."""
    return cfg.output / "trials" / f"{number:05d}"


def load_existing(cfg: StudyConfig) -> optuna.Study:
    """The study as stored, for reading (report, export); a clear error when it was never run."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    never_run = ExplorerError(f"study {cfg.study_name!r} has no trials yet in {cfg.storage}; run `explore run` first")
    file = storage_file(cfg.storage)
    if file is not None and not file.is_file():  # reading must not create the storage file (or its folder)
        raise never_run
    try:
        return optuna.load_study(study_name=cfg.study_name, storage=storage_for(cfg))
    except KeyError:
        raise never_run from None


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def write_artifacts(folder: Path, point_dict: dict[str, Any], metrics: Metrics, dpu_conf: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arch.json").write_text(metrics.details["arch_json"])
    (folder / "dpu_conf.vh").write_text(dpu_conf)
    (folder / "partition.json").write_text(
        json.dumps({"subgraphs": metrics.details["partition"], "cpu_reasons": metrics.details["cpu_reasons"]}, indent=1)
    )
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "design_point": point_dict,
                "metrics": metrics.values,
                "sources": metrics.sources,
                "constraints": metrics.constraints,
            },
            indent=1,
            default=float,
        )
    )


@dataclass
class Progress:
    """A progress bar on a terminal; in a log (stderr not a terminal), one plain line every `log_every` s."""

    total: int
    start: float
    enabled: bool
    base: int = 0  # finished trials when this run started (for the rate estimate)
    last: float = 0.0
    interactive: bool = field(default_factory=lambda: sys.stderr.isatty())
    log_every: float = 30.0

    def update(self, done: int, study: optuna.Study, force: bool = False) -> None:
        now = time.time()
        interval = 0.5 if self.interactive else self.log_every
        if not self.enabled or (not force and now - self.last < interval):
            return
        self.last = now
        elapsed = now - self.start
        new = max(1, done - self.base)
        rate = elapsed / new
        left = max(0, self.total - done) * rate
        try:
            best = len(study.best_trials)
        except (ValueError, RuntimeError):
            best = 0
        text = f"{done}/{self.total} trials, {best} Pareto-optimal, {elapsed:.0f}s elapsed, ~{left:.0f}s left"
        if self.interactive:
            bar = "#" * int(30 * done / max(1, self.total))
            sys.stderr.write(f"\r[{bar:<30}] {text}" + ("\n" if force else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def run_worker(cfg: StudyConfig, worker: int = 0, progress: bool = True) -> int:
    """Run trials until the study holds cfg.n_trials finished ones (or the timeout); returns trials run here."""
    ctx = StudyContext(cfg)
    study = open_study(cfg, ctx.space, cfg.seed + worker)
    start = time.time()
    bar = Progress(cfg.n_trials, start, progress and worker == 0, finished_count(study))
    ran = 0
    while True:
        done = finished_count(study)
        bar.update(done, study)
        if done >= cfg.n_trials or (cfg.timeout is not None and time.time() - start >= cfg.timeout):
            break
        trial = study.ask()
        try:
            values = suggest(trial, ctx.space, ctx.facts)
            point = design_point(values, ctx.space, ctx.board, ctx.layers, ctx.db)
            metrics = ctx.evaluate(point)
            for name, value in metrics.constraints.items():
                trial.set_constraint(name, value if math.isfinite(value) else 1e9)
            point_dict = point.to_dict()
            folder = trial_folder(cfg, trial.number)
            write_artifacts(folder, point_dict, metrics, render_dpu_conf(point.dpu, ctx.board))
            trial.set_user_attr("design_point", point_dict)
            trial.set_user_attr("metrics", {k: (v if math.isfinite(v) else None) for k, v in metrics.values.items()})
            trial.set_user_attr("sources", metrics.sources)
            trial.set_user_attr(
                "details",
                {
                    k: metrics.details[k]
                    for k in ("fits", "fingerprint", "target", "partition", "cpu_reasons", "latency_split_ms")
                },
            )
            trial.set_user_attr("artifacts", str(folder))
            objective_values = [metrics.values[o.metric] for o in cfg.objectives]
            if not all(math.isfinite(v) for v in objective_values):
                raise ExplorerError(
                    f"an objective is not finite: {dict(zip([o.metric for o in cfg.objectives], objective_values, strict=True))}"
                )
            study.tell(trial, objective_values)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted by the user")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except Exception as exc:  # a failed trial is recorded with its reason; the study goes on
            reason = str(exc) if isinstance(exc, ExplorerError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", reason)
            if not isinstance(exc, ExplorerError):
                trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        ran += 1
    bar.update(finished_count(study), study, force=True)
    return ran


def _worker_entry(args: tuple[StudyConfig, int]) -> int:
    cfg, worker = args
    try:
        return run_worker(cfg, worker, progress=False)
    except KeyboardInterrupt:
        return 0


def run_study(cfg: StudyConfig, workers: int = 1, progress: bool = True) -> optuna.Study:
    """Run the study with `workers` processes on one storage; returns the study."""
    if workers > 1 and not cfg.storage.startswith(("journal:", "postgresql", "mysql")):
        raise ExplorerError("several workers need a journal file or a database server storage, not SQLite")
    cfg.output.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers - 1) as pool:
            pending = pool.map_async(_worker_entry, [(cfg, w) for w in range(1, workers)])
            run_worker(cfg, 0, progress)
            pending.wait()
    else:
        run_worker(cfg, 0, progress)
    return load_existing(cfg)
