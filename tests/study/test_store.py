"""The study store: journal repair, stale trials, worker identity and seeds, fail-fast, repeated designs."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from explorer.errors import ExplorerError
from explorer.study.design_metrics import StudyContext
from explorer.study.record import FAIL_REASON
from explorer.study.runner import FAIL_FAST, FailureStreak, StudyStopped, run_study, worker_seed
from explorer.study.search_space import load_space
from explorer.study.store import (
    WORKER_ATTR,
    Worker,
    close_stale_trials,
    counts_as_finished,
    finished_count,
    repair_journal,
    storage_for,
)
from tests.study.test_runner import small_study

RECORD = b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}'


def test_repair_keeps_whole_records_and_moves_the_cut_aside(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    journal.write_bytes(RECORD + b"\n" + RECORD + b"\n" + b'{"op_code":4,"wor')
    note = repair_journal(journal)
    assert note is not None and "17 bytes" in note and "2 whole records" in note
    assert journal.read_bytes() == RECORD + b"\n" + RECORD + b"\n"
    assert (tmp_path / "study.journal.torn-1").read_bytes() == b'{"op_code":4,"wor\n'
    assert repair_journal(journal) is None  # sound now: nothing more is cut
    journal.write_bytes(b'{"op_' + RECORD + b"\n" + RECORD + b"\n")  # a record written onto a cut one
    assert repair_journal(journal) is not None
    assert journal.read_bytes() == RECORD + b"\n" + RECORD + b"\n"
    assert (tmp_path / "study.journal.torn-2").read_bytes() == b'{"op_\n'


def test_repair_leaves_a_sound_or_missing_journal_alone(tmp_path: Path) -> None:
    assert repair_journal(tmp_path / "none.journal") is None
    journal = tmp_path / "study.journal"
    journal.write_bytes(RECORD + b"\n")
    assert repair_journal(journal) is None and journal.read_bytes() == RECORD + b"\n"
    assert not list(tmp_path.glob("*.torn-*"))


def test_workers_are_told_apart_by_pid_and_start_time() -> None:
    me = Worker.current()
    assert me.alive() is True and Worker.from_dict(me.to_dict()) == me
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert Worker(me.host, done.pid, None).alive() is False
    assert Worker(me.host, os.getpid(), "1").alive() is False  # a reused pid: another start time
    assert Worker("another-host.example", 1, None).alive() is None
    assert Worker.from_dict({"pid": "1", "host": "h"}) is None


def test_stale_running_trials_are_closed_with_the_reason(tmp_path: Path) -> None:
    storage = storage_for(f"journal:{tmp_path / 'j.journal'}")
    study = optuna.create_study(storage=storage, study_name="s")
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    dead, alive = study.ask(), study.ask()
    dead.set_user_attr(WORKER_ATTR, Worker(Worker.current().host, done.pid, None).to_dict())
    alive.set_user_attr(WORKER_ATTR, Worker.current().to_dict())
    closed = close_stale_trials(study)
    assert [n for n, _ in closed] == [dead.number] and f"process {done.pid}" in closed[0][1]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {dead.number: "FAIL", alive.number: "RUNNING"}
    assert study.trials[dead.number].user_attrs["fail_reason"].startswith("interrupted: its worker")


def test_a_trial_killed_before_it_named_its_worker_is_stale_unless_another_worker_lives(tmp_path: Path) -> None:
    """Optuna creates a trial RUNNING before its worker can record itself on it: a process killed in between
    leaves a trial with no worker. Workers mark themselves in the study before their first trial; with no other
    live marked worker such a trial is closed at once, and with one (it may be that worker's, just asked) only
    after the grace period."""
    from explorer.study.store import ask, mark_worker

    storage = storage_for(f"journal:{tmp_path / 'j.journal'}")
    study = optuna.create_study(storage=storage, study_name="s")
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    mark_worker(study, Worker(Worker.current().host, done.pid, None))  # the killed worker
    orphan = study.ask()  # as a worker killed inside ask() leaves it
    mark_worker(study, Worker.current())  # this process does not count as another worker
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mark_worker(study, Worker(Worker.current().host, sleeper.pid, None))  # another live worker
        assert close_stale_trials(study) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    closed = close_stale_trials(study)
    assert [n for n, _ in closed] == [orphan.number] and "died while asking" in closed[0][1]
    me = Worker.current()
    mine = ask(study, me)  # the explorer's ask records the worker on the trial
    assert study.trials[mine.number].user_attrs[WORKER_ATTR] == me.to_dict() and close_stale_trials(study) == []


def test_a_dead_workers_trial_is_asked_again_and_does_not_count(tmp_path: Path) -> None:
    storage = storage_for(f"journal:{tmp_path / 'j.journal'}")
    study = optuna.create_study(storage=storage, study_name="s")
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    dead.set_user_attr(WORKER_ATTR, Worker(Worker.current().host, done.pid, None).to_dict())
    judged = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    judged.set_user_attr(FAIL_REASON, "the evaluator raised")
    study.tell(judged, state=optuna.trial.TrialState.FAIL)
    assert close_stale_trials(study, max_retry=1)
    trials = study.get_trials()
    retry = trials[-1]
    assert retry.state.name == "WAITING" and retry.params == {"x": dead.params["x"]}
    assert retry.system_attrs["failed_trial"] == dead.number and not retry.user_attrs  # starts clean
    # the failure of a design point counts toward n_trials; its worker's death does not
    assert [counts_as_finished(t) for t in trials] == [False, True, False]
    assert finished_count(study) == 1
    # asked again and dead again: after max_retry retries the design point is given up
    again = study.ask()
    assert again.params == retry.params
    again.set_user_attr(WORKER_ATTR, Worker(Worker.current().host, done.pid, None).to_dict())
    close_stale_trials(study, max_retry=1)
    assert not [t for t in study.get_trials() if t.state.name == "WAITING"]


def test_worker_seeds() -> None:
    assert worker_seed(7, 0, 0, concurrent=False) == 7  # a fresh single run is reproducible
    seeds = {worker_seed(7, w, n, concurrent=False) for w in range(3) for n in (0, 5)} - {7}
    assert len(seeds) == 5  # resumed runs and other workers draw other seeds
    assert worker_seed(7, 0, 5, concurrent=False) == worker_seed(7, 0, 5, concurrent=False)


def test_failure_streak_stops_on_the_same_failure_only() -> None:
    streak = FailureStreak()
    for reason in ("a", "b", "a", "b"):
        streak.failure(reason)  # alternating failures are properties of the design points
    streak.failure("c")
    streak.success()
    for _ in range(FAIL_FAST - 1):
        streak.failure("c")
    with pytest.raises(StudyStopped, match=r"the last 3 trials failed the same way.*: c"):
        streak.failure("c")


@pytest.mark.slow
def test_an_evaluator_that_always_fails_stops_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = small_study(tmp_path, n_trials=20)

    def broken(self: StudyContext, point: object) -> object:
        raise ZeroDivisionError("division by zero in the user's evaluator")

    monkeypatch.setattr(StudyContext, "metrics", broken)
    with pytest.raises(StudyStopped) as stopped:
        run_study(cfg, progress=False)
    assert "ZeroDivisionError: division by zero" in str(stopped.value) and stopped.value.exit_code == 4
    study = optuna.load_study(study_name=cfg.store.study_name, storage=storage_for(cfg.store.url))
    assert [t.state.name for t in study.trials] == ["FAIL"] * FAIL_FAST


@pytest.mark.slow
def test_a_repeated_design_point_reuses_the_earlier_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = small_study(tmp_path, n_trials=4)
    cfg = dataclasses.replace(cfg, space=load_space(cfg.space.files[:1], {}))  # the hardware side only
    calls = {"n": 0}
    original = StudyContext.metrics

    def counted(self: StudyContext, point: object) -> object:
        calls["n"] += 1
        return original(self, point)  # type: ignore[arg-type]

    monkeypatch.setattr(StudyContext, "metrics", counted)
    study = run_study(cfg, progress=False)
    first = study.trials[0]
    for _ in range(2):  # the same parameters again, as a sampler may propose them
        study.enqueue_trial(first.params)
    study = run_study(cfg.with_run(n_trials=6), progress=False)
    assert calls["n"] == 4
    again = study.trials[4:]
    assert [t.user_attrs["same_as"] for t in again] == [0, 0]
    assert [t.values for t in again] == [first.values] * 2 and again[0].constraints == first.constraints


def test_a_bad_storage_url_is_one_message() -> None:
    from explorer.study.store import open_storage

    with pytest.raises(ExplorerError, match=re.escape("storage 'sqlite:////nonexistent-dir/x.db' cannot be opened")):
        open_storage("sqlite:////nonexistent-dir/x.db")


def test_a_worker_whose_parent_died_while_it_started_stops_at_once(tmp_path: Path) -> None:
    """The race the orphan check closes: the parent is gone before the worker armed its death signal."""
    import multiprocessing

    from explorer.study.runner import _worker_entry

    cfg = small_study(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    worker = multiprocessing.get_context("spawn").Process(target=_worker_entry, args=(cfg, 1, gone.pid))
    worker.start()
    worker.join(timeout=120)
    assert worker.exitcode == 130
    assert not (cfg.store.output / "study.journal").exists()  # it ran nothing


def test_breaking_a_stale_lock_never_takes_a_newer_one(tmp_path: Path) -> None:
    """Two processes judge the same dead owner's lock stale; the first breaks it and takes the lock. The
    second's break must find that the file it renamed is not the one it judged, and put it back."""
    import json

    from explorer.study.store import JournalLock

    journal = tmp_path / "study.journal"
    lock_file = tmp_path / "study.journal.lock"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock_file.write_text(json.dumps(Worker(Worker.current().host, gone.pid, None).to_dict()))
    late = JournalLock(str(journal))
    judged = late._inspect()
    assert judged is not None and judged[1] is not None and judged[1].alive() is False
    first = JournalLock(str(journal))
    assert first.acquire()  # breaks the stale lock and takes it
    taken = lock_file.read_text()
    assert not late._break(judged[0], "stale")  # the late breaker renamed the new lock, and restores it
    assert lock_file.read_text() == taken and not list(tmp_path.glob("*.broken"))
    first.release()


def test_the_queue_lock_lets_one_worker_count_and_queue_at_a_time(tmp_path: Path) -> None:
    """Two workers that complete at once must not both fill the room a study has left: `queue_lock` is a lock
    file beside the journal (another of the project's locks: a dead owner's is released), nothing for SQLite."""
    import threading
    import time

    from explorer.study.store import queue_lock

    journal = f"journal:{tmp_path / 'study.journal'}"
    order: list[str] = []

    def second() -> None:
        with queue_lock(journal):
            order.append("second in")

    with queue_lock(journal):
        assert (tmp_path / "study.journal.queue.lock").is_file()
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.3)
        order.append("first out")
    other.join(timeout=10)
    assert order == ["first out", "second in"]
    assert not (tmp_path / "study.journal.queue.lock").exists()
    with queue_lock(f"sqlite:///{tmp_path / 'study.db'}"):
        assert not list(tmp_path.glob("*.lock"))


def test_an_interrupt_while_asking_waits_until_the_trial_can_be_recorded() -> None:
    """Optuna creates the trial before `ask` returns it: a SIGTERM or Ctrl-C in between is held, then raised
    where the runner records the trial as interrupted; the handlers are put back."""
    import signal
    import time

    from explorer.study.runner import DeferredInterrupts, Interrupted

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with DeferredInterrupts() as deferred:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # delivered here, and held
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        reached = True
    assert reached and isinstance(deferred.pending, Interrupted) and deferred.pending.signame == "SIGTERM"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    with pytest.raises(Interrupted):
        deferred.raise_pending()
    DeferredInterrupts().raise_pending()  # nothing came: nothing raised
