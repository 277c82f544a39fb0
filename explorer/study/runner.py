"""The study loop: ask, evaluate, tell, on Optuna storage (a journal file by default).

Resource overuse and the other constraints go through `trial.set_constraint` (<= 0 feasible). A trial
that fails is recorded with its reason and the study goes on, unless the same failure repeats: an error
that is not a property of the design point (an evaluator that crashes, a programming error) stops the
study after `FAIL_FAST` identical failures in a row. The study runs until it holds `n_trials` finished
trials, so rerunning the same command resumes it.

Nothing is lost: Ctrl-C and SIGTERM record the running trial as failed ("interrupted") and leave a
consistent study; trials left RUNNING by a process that died are closed as failed when the study is
next opened (`store.close_stale_trials`). Several processes can work on one storage: each draws its own
sampler seed from the study seed and its worker identity, and a design point that another trial already
evaluated (or is evaluating) is not evaluated again: its result is reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna

from explorer.errors import ExplorerError
from explorer.hardware.config import resolve
from explorer.hardware.dpu_conf import render_dpu_conf
from explorer.study.completion import Completion, queue_best_hardware, queue_limit
from explorer.study.config import StudyConfig
from explorer.study.design_metrics import Metrics, StudyContext
from explorer.study.record import METRICS, TrialRecord, copy_result, record_failure, write_result
from explorer.study.search_space import SearchSpace, design_point, suggest
from explorer.study.store import (
    WORKER_ATTR,
    Heartbeat,
    Worker,
    ask,
    beating,
    close_stale_trials,
    counts_as_finished,
    fail_stale,
    finished_count,
    mark_worker,
    open_storage,
    queue_lock,
    trial_folder,
)
from explorer.study.store import load_existing as load_stored

FAIL_FAST = 3  # identical failures in a row that stop a study
TWIN_POLL_S = 0.2  # how often a worker looks whether the trial it waits for has finished


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), handled like Ctrl-C."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def handle_termination() -> None:
    """Make SIGTERM and SIGHUP interrupt like Ctrl-C, so the running trial is recorded (main thread only)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupted)


class DeferredInterrupts:
    """While asking for a trial, Ctrl-C, SIGTERM and SIGHUP wait: Optuna creates the trial RUNNING before `ask`
    returns it, and an interrupt in between would leave it RUNNING with nobody to record it. The signal that came
    is raised by `raise_pending`, once the trial is in hand and can be recorded as interrupted. Main thread
    only (elsewhere Python delivers no signals, and this does nothing)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.pending: KeyboardInterrupt | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> DeferredInterrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._hold)
        return self

    def _hold(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        self.pending = self.pending or (KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(name))

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            if handler is not None:  # (None: a handler set outside Python, which cannot be put back)
                signal.signal(sig, handler)

    def raise_pending(self) -> None:
        if self.pending is not None:
            raise self.pending


def interrupt_reason(exc: KeyboardInterrupt) -> str:
    return f"interrupted by {exc.signame}" if isinstance(exc, Interrupted) else "interrupted by the user"


class StudyStopped(ExplorerError):
    """The study stopped itself: the same failure repeated, so every further trial would fail too."""

    exit_code = 4


def worker_seed(study_seed: int, worker: int, existing: int, concurrent: bool) -> int:
    """The sampler seed of one process: the study seed for the first worker of a fresh study (reproducible),
    else derived from the study seed, the worker index and the trials already there, so resumed and
    concurrent processes do not propose the same designs."""
    if worker == 0 and existing == 0 and not concurrent:
        return study_seed
    salt = f"{study_seed}:{worker}:{existing}:{os.getpid() if concurrent else ''}"
    return int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16)


def make_sampler(cfg: StudyConfig, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    if cfg.run.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(8, cfg.run.n_trials // 8)))
    if cfg.run.sampler == "tpe":
        with warnings.catch_warnings():  # `group` is experimental in Optuna; what it does is what we want
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if cfg.run.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.run.sampler == "grid":
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


def heartbeat_of(cfg: StudyConfig) -> Heartbeat:
    return Heartbeat(cfg.store.heartbeat_interval, cfg.store.grace_period, cfg.store.max_retry)


def open_study(cfg: StudyConfig, space: SearchSpace, worker: int = 0) -> optuna.Study:
    """Open (or create) the study; close trials whose worker died; seed this process's sampler."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=cfg.store.study_name,
            storage=open_storage(cfg.store.url, heartbeat_of(cfg)),
            directions=[
                optuna.study.StudyDirection.MINIMIZE if o.direction == "minimize" else optuna.study.StudyDirection.MAXIMIZE
                for o in cfg.objectives
            ],
            load_if_exists=True,
        )
    except ValueError as exc:  # e.g. the stored study has another number of objectives
        raise ExplorerError(f"the study {cfg.store.study_name!r} in {cfg.store.url} cannot be opened: {exc}") from None
    meta = {
        "objectives": [[o.metric, o.direction] for o in cfg.objectives],
        "board": cfg.board,
        "model": str(cfg.model.path),
        "study_file": str(cfg.path),
        "evaluator": cfg.data.evaluator,
    }
    if study.user_attrs.get("explorer") != meta:
        if study.user_attrs.get("explorer") and [tuple(x) for x in study.user_attrs["explorer"]["objectives"]] != [
            (o.metric, o.direction) for o in cfg.objectives
        ]:
            raise ExplorerError(
                f"the study {cfg.store.study_name!r} in {cfg.store.url} was created with other objectives "
                f"({study.user_attrs['explorer']['objectives']}); use another output folder or study_name"
            )
        study.set_user_attr("explorer", meta)
    for number, reason in close_stale_trials(study, cfg.store.max_retry):
        print(f"note: trial {number} was left RUNNING and is now recorded as failed: {reason}", file=sys.stderr)
    trials = study.get_trials(deepcopy=False)
    concurrent = any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    study.sampler = make_sampler(cfg, space, worker_seed(cfg.run.seed, worker, len(trials), concurrent))
    return study


def load_existing(cfg: StudyConfig) -> optuna.Study:
    """The study as stored, for reading (report, export); a clear error when it was never run."""
    return load_stored(cfg.store.study_name, cfg.store.url)


def load_records(cfg: StudyConfig) -> list[TrialRecord]:
    """Every trial of the stored study, read into TrialRecords."""
    return [TrialRecord.read(t) for t in load_existing(cfg).get_trials(deepcopy=False)]


def write_artifacts(folder: Path, point_dict: dict[str, Any], metrics: Metrics, dpu_conf: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arch.json").write_text(metrics.arch_json)
    (folder / "dpu_conf.vh").write_text(dpu_conf)
    (folder / "partition.json").write_text(
        json.dumps(
            {"subgraphs": [asdict(s) for s in metrics.details.partition], "cpu_reasons": metrics.details.cpu_reasons}, indent=1
        )
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


class FailureStreak:
    """Counts identical failures in a row; raises StudyStopped at FAIL_FAST of them."""

    def __init__(self, limit: int = FAIL_FAST) -> None:
        self.limit, self.reason, self.count = limit, "", 0

    def success(self) -> None:
        self.reason, self.count = "", 0

    def failure(self, reason: str) -> None:
        self.count = self.count + 1 if reason == self.reason else 1
        self.reason = reason
        if self.count >= self.limit:
            raise StudyStopped(
                f"stopped: the last {self.count} trials failed the same way, so every further trial would too: {reason}"
            )


SUGGESTED_ATTR = "suggested"  # set once a trial's parameters are all recorded
UNKNOWN_WORKER_WAIT_S = 10.0  # how long a trial that has not yet named its worker is waited for


def find_twin(study: optuna.Study, trial: optuna.Trial, design: dict[str, Any]) -> optuna.trial.FrozenTrial | None:
    """An earlier trial with the same parameters and design point (`design`: a study file edited between runs
    may map the same parameters to another design) that completed; None when the design point is new.

    Concurrent workers never evaluate one design point twice: a trial waits for every lower-numbered
    trial of a live worker that has not yet recorded its parameters, or that has the same ones and is
    still running, then looks again. Waits only go to lower numbers, so they cannot form a cycle."""
    params = trial.params
    give_up_unknown = time.monotonic() + UNKNOWN_WORKER_WAIT_S
    while True:
        wait = False
        for other in study.get_trials(deepcopy=False):
            if other.number == trial.number:
                continue
            if other.state == optuna.trial.TrialState.COMPLETE and other.params == params and METRICS in other.user_attrs:
                if TrialRecord.read(other).design_point == design:
                    return other
                continue
            if other.state != optuna.trial.TrialState.RUNNING or other.number > trial.number:
                continue
            owner = Worker.from_dict(other.user_attrs.get(WORKER_ATTR))
            if owner is None:
                wait = wait or time.monotonic() < give_up_unknown  # just asked, or its process died at once
            elif owner.alive() is not False and (not other.user_attrs.get(SUGGESTED_ATTR) or other.params == params):
                wait = True
        if not wait:
            return None
        time.sleep(TWIN_POLL_S)


def reuse_twin(study: optuna.Study, trial: optuna.Trial, twin: optuna.trial.FrozenTrial) -> None:
    """Record `twin`'s result for `trial` (the same design point), without evaluating it again."""
    copy_result(trial, twin)
    study.tell(trial, list(twin.values))


def record_result(trial: optuna.Trial, cfg: StudyConfig, ctx: StudyContext, point: Any, metrics: Metrics) -> list[float]:
    """Write a trial's constraints, record and artifacts; returns its objective values (finite, else an error)."""
    for name, value in metrics.constraints.items():
        trial.set_constraint(name, value if math.isfinite(value) else 1e9)
    point_dict = point.to_dict()
    folder = trial_folder(cfg.store.output, trial.number)
    write_artifacts(folder, point_dict, metrics, render_dpu_conf(resolve(point.dpu, ctx.db), ctx.board))
    write_result(trial, point_dict, metrics.values, metrics.sources, metrics.details, folder)
    objective_values = [metrics.values[o.metric] for o in cfg.objectives]
    if not all(math.isfinite(v) for v in objective_values):
        named = dict(zip([o.metric for o in cfg.objectives], objective_values, strict=True))
        raise ExplorerError(f"an objective is not finite: {named}")
    return objective_values


def room(cfg: StudyConfig, study: optuna.Study, trial: optuna.Trial) -> int:
    """How many proposals one completion may queue: its share (`queue_limit`), within the trials the study has
    left once the finished, waiting and running ones (other workers' too) are counted, as the storage has them
    now (call under `queue_lock`)."""
    trials = study.get_trials(deepcopy=False)  # one read: every trial counted once, in one state
    finished = sum(counts_as_finished(t) for t in trials)
    waiting = sum(t.state == optuna.trial.TrialState.WAITING for t in trials)
    running = sum(t.state == optuna.trial.TrialState.RUNNING and t.number != trial.number for t in trials)
    return min(queue_limit(cfg.run.n_trials), cfg.run.n_trials - finished - waiting - running)


def complete_hardware(
    study: optuna.Study,
    trial: optuna.Trial,
    completion: Completion,
    point: Any,
    metrics: Metrics,
    room: Callable[[], int],
    lock: Callable[[], contextlib.AbstractContextManager[None]],
) -> None:
    """Queue the best DPU configurations of a completed trial's model variant (completion.py). The trial is
    already recorded: a failure here is reported and the study goes on without the proposals."""
    try:
        queue_best_hardware(study, trial, completion, point, metrics, room, lock)
    except Exception as exc:  # the proposals are an optimisation: the study goes on without them
        print(f"note: trial {trial.number}: no DPU configurations proposed for its model variant: {exc}", file=sys.stderr)


def run_worker(
    cfg: StudyConfig, worker: int = 0, progress: bool = True, ctx: StudyContext | None = None, parent: int | None = None
) -> int:
    """Run trials until the study holds cfg.run.n_trials finished ones (or the timeout); returns trials run here.
    A spawned worker (`parent` given) stops when that process is gone."""
    ctx = ctx or StudyContext(cfg)
    study = open_study(cfg, ctx.space, worker)
    me = Worker.current()
    mark_worker(study, me)  # before its first trial (store.py close_stale_trials)
    start = time.time()
    bar = Progress(cfg.run.n_trials, start, progress and worker == 0, finished_count(study))
    streak = FailureStreak()
    completion = Completion(ctx) if cfg.run.hardware_search == "complete" else None
    ran = 0
    while True:
        done = finished_count(study)
        bar.update(done, study)
        # a retry of a trial whose worker died is run even when the others already reached n_trials
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        retries = [t for t in waiting if "failed_trial" in t.system_attrs]
        if (done >= cfg.run.n_trials and not retries) or (cfg.run.timeout is not None and time.time() - start >= cfg.run.timeout):
            break
        if parent is not None and os.getppid() != parent:
            break  # the parent is gone: an orphaned worker stops instead of running on
        fail_stale(study)  # a database storage: trials whose worker stopped beating are failed and retried
        with DeferredInterrupts() as deferred:
            trial = ask(study, me)
        try:
            deferred.raise_pending()  # an interrupt that came while asking: the trial is recorded as interrupted
            with beating(study, trial._trial_id):
                values = suggest(trial, ctx.space, ctx.facts)
                trial.set_user_attr(SUGGESTED_ATTR, True)
                point = design_point(values, ctx.space, ctx.board, ctx.layers, ctx.db)
                twin = find_twin(study, trial, point.to_dict())
                if twin is not None:
                    reuse_twin(study, trial, twin)
                else:
                    metrics = ctx.metrics(point)
                    study.tell(trial, record_result(trial, cfg, ctx, point, metrics))
                    if completion is not None:  # proposals within what is left of the study's trials
                        lock = partial(queue_lock, cfg.store.url)
                        complete_hardware(study, trial, completion, point, metrics, partial(room, cfg, study, trial), lock)
            streak.success()
        except KeyboardInterrupt as exc:
            with contextlib.suppress(RuntimeError):  # the interrupt may come after the trial was told
                record_failure(trial, interrupt_reason(exc))
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except Exception as exc:  # a failed trial is recorded with its reason; the study goes on
            reason = str(exc) if isinstance(exc, ExplorerError) else f"{type(exc).__name__}: {exc}"
            record_failure(trial, reason, None if isinstance(exc, ExplorerError) else traceback.format_exc())
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            streak.failure(reason)
        ran += 1
    bar.update(finished_count(study), study, force=True)
    return ran


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to this process when its parent dies (a killed `explore run` ends its workers)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _worker_entry(cfg: StudyConfig, worker: int, parent: int) -> None:
    """A worker process: its interrupts record the running trial; its errors are printed and end it non-zero.
    It dies with its parent: the death signal is armed first, and a parent already gone ends it at once."""
    _die_with_parent()
    handle_termination()
    if os.getppid() != parent:
        sys.exit(130)  # the parent died while this process was starting
    try:
        run_worker(cfg, worker, progress=False, parent=parent)
    except KeyboardInterrupt:
        sys.exit(130)
    except ExplorerError as exc:
        print(f"error: worker {worker}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def run_study(cfg: StudyConfig, workers: int = 1, progress: bool = True, ctx: StudyContext | None = None) -> optuna.Study:
    """Run the study with `workers` processes on one storage; returns the study."""
    if workers > 1 and not cfg.store.url.startswith(("journal:", "postgresql", "mysql")):
        raise ExplorerError("several workers need a journal file or a database server storage, not SQLite")
    try:
        cfg.store.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExplorerError(f"cannot create the output folder {cfg.store.output}: {exc.strerror}") from None
    spawn = multiprocessing.get_context("spawn")
    others = [
        spawn.Process(target=_worker_entry, args=(cfg, w, os.getpid()), name=f"explore-worker-{w}") for w in range(1, workers)
    ]
    for process in others:
        process.start()
    try:
        run_worker(cfg, 0, progress, ctx)
        for process in others:
            process.join()
    finally:
        for process in others:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker records its running trial as interrupted
        for process in others:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    failed = [p for p in others if p.exitcode]
    if failed:
        raise ExplorerError(
            f"{len(failed)} of {workers} workers stopped with an error (see above); the study is consistent, "
            "run the same command again to resume"
        )
    return load_existing(cfg)
