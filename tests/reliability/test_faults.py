"""Fault injection: kill a study with SIGKILL or SIGTERM at seeded moments, cut the journal's tail, run
workers side by side, leave stale locks and orphaned workers; after each, the next run completes the
study with no completed trial lost, none left RUNNING, no design point evaluated twice at once, and
report and export still work.

Each study is small (random sampler, a few trials, 8 generated images), run as `explore` processes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from explorer.study.store import JournalLock, Worker

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
RNG = random.Random(20261202)  # the kill moments and cut offsets are drawn from this, so a failure repeats


def write_study(folder: Path, n_trials: int = 8, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(
        f"model: {EXAMPLE}\ndata: pose-synth:8:3\ncalibration_data: pose-synth:4:2\nboard: kv260\n"
        f"sampler: random\nn_trials: {n_trials}\noutput: out\nconstraints: {{fit: false}}\n"
        "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n" + extra
    )
    return path


def explore(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / ".cache")}
    return subprocess.Popen(
        [sys.executable, "-c", "from explorer.cli import run; run()", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def run_to_end(folder: Path, *args: str) -> str:
    code, _, err = finish(explore("run", "study.yaml", "--no-progress", *args, cwd=folder))
    assert code == 0, err
    assert "Traceback" not in err
    return err


def journal(folder: Path) -> Path:
    return folder / "out" / "study.journal"


def read_trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials as a plain Optuna reader sees them (no repair: it must be readable as it is)."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal(folder))))
    return optuna.load_study(study_name="study", storage=storage).get_trials(deepcopy=False)


def completed(trials: list[optuna.trial.FrozenTrial]) -> dict[int, tuple[float, ...]]:
    return {t.number: tuple(t.values) for t in trials if t.state.name == "COMPLETE"}


def wait_for_trials(folder: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal(folder).is_file() and journal(folder).read_text(errors="replace").count('"state":1') >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} trials did not complete within {timeout} s")


def check_after_recovery(folder: Path, before: dict[int, tuple[float, ...]], n_trials: int) -> list[optuna.trial.FrozenTrial]:
    trials = read_trials(folder)
    after = completed(trials)
    assert {n: after.get(n) for n in before} == before, "a completed trial was lost or changed"
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    assert sum(t.state.name in ("COMPLETE", "FAIL") for t in trials) >= n_trials
    assert len({t.number for t in trials}) == len(trials)
    return trials


def check_report_and_export(folder: Path) -> None:
    code, _, err = finish(explore("report", "study.yaml", cwd=folder))
    assert code == 0, err
    code, _, err = finish(explore("export", "study.yaml", "--best", "fps_multi", "--no-model", "-o", "exp", cwd=folder))
    assert code == 0, err
    assert (folder / "exp" / "deploy" / "arch.json").is_file()


def evaluated_twice(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Parameter sets evaluated by more than one trial (a reused result names its twin in `same_as`)."""
    seen: dict[str, int] = {}
    for t in trials:
        if t.state.name == "COMPLETE" and "same_as" not in t.user_attrs:
            key = json.dumps(t.params, sort_keys=True)
            seen[key] = seen.get(key, 0) + 1
    return [json.loads(k) for k, n in seen.items() if n > 1]


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "kill"
    write_study(folder)
    closed_before: set[int] = set()
    for round_ in range(3):
        budget = str(8 * (round_ + 1))
        process = explore("run", "study.yaml", "--no-progress", "--n-trials", budget, cwd=folder)
        wait_for_trials(folder, 1 + 8 * round_)
        time.sleep(RNG.uniform(0.0, 0.6))  # anywhere inside a trial, or a journal write
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        before = completed(read_trials(folder))
        err = run_to_end(folder, "--n-trials", budget)
        trials = check_after_recovery(folder, before, int(budget))
        closed = {t.number: t.user_attrs["fail_reason"] for t in trials if t.state.name == "FAIL"}
        assert all("died" in reason for reason in closed.values()), closed
        if set(closed) - closed_before:
            assert "was left RUNNING and is now recorded as failed" in err
        closed_before = set(closed)
    check_report_and_export(folder)


def test_sigterm_records_the_trial_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "term"
    write_study(folder, n_trials=30)
    process = explore("run", "study.yaml", "--no-progress", cwd=folder)
    wait_for_trials(folder, 2)
    os.killpg(process.pid, signal.SIGTERM)
    code, _, err = finish(process)
    assert code == 130
    assert "interrupted by SIGTERM: the running trial is recorded as failed" in err and "Traceback" not in err
    trials = read_trials(folder)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    reasons = [t.user_attrs.get("fail_reason") for t in trials if t.state.name == "FAIL"]
    assert reasons in ([], ["interrupted by SIGTERM"])


@pytest.mark.parametrize("cut", [RNG.uniform(0.55, 0.99) for _ in range(3)])
def test_torn_journal_tail_is_repaired(tmp_path: Path, cut: float) -> None:
    folder = tmp_path / "torn"
    write_study(folder, n_trials=6)
    run_to_end(folder)
    data = journal(folder).read_bytes()
    offset = int(len(data) * cut)
    if data[offset - 1 : offset] == b"\n":
        offset -= 5  # always inside a record
    journal(folder).write_bytes(data[:offset])
    before = completed(read_trials(folder))  # Optuna's reader skips a torn last line
    err = run_to_end(folder, "--n-trials", "9")
    assert "ended in a record cut by a crash" in err
    assert (folder / "out" / "study.journal.torn-1").read_bytes() == data[data.rfind(b"\n", 0, offset) + 1 : offset] + b"\n"
    check_after_recovery(folder, before, 9)
    check_report_and_export(folder)


def test_a_record_appended_onto_a_torn_line_is_kept(tmp_path: Path) -> None:
    """An older writer appended a whole record onto a cut one: the record survives, the cut bytes move aside."""
    folder = tmp_path / "merged"
    write_study(folder, n_trials=4)
    run_to_end(folder)
    lines = journal(folder).read_bytes().split(b"\n")[:-1]
    lines[-2] = b'{"op_code":5,"worker' + lines[-2]  # a cut record, then a whole one written onto its line
    journal(folder).write_bytes(b"".join(line + b"\n" for line in lines))
    with pytest.raises(ValueError):
        read_trials(folder)  # Optuna alone cannot read this journal any more
    err = run_to_end(folder, "--n-trials", "6")
    assert "ended in a record cut by a crash" in err
    assert (folder / "out" / "study.journal.torn-1").read_bytes() == b'{"op_code":5,"worker\n'
    trials = check_after_recovery(folder, {}, 6)
    assert len(completed(trials)) >= 6


def test_two_processes_share_a_study_without_evaluating_a_design_twice(tmp_path: Path) -> None:
    folder = tmp_path / "two"
    # a space of 4 hardware points and no model-side choice: the samplers must collide
    extra = (
        "search_space:\n  files: [dpu_zynqmp.yaml]\n  overrides:\n    dpu.arch: {choices: [B512, B1024]}\n"
        "    dpu.cores: {choices: [1, 2]}\n    dpu.ram_usage: low\n    dpu.dsp_usage: high\n    dpu.uram_share: 0.0\n"
        "    dpu.channel_augmentation: true\n    dpu.softmax: false\n    dpu.relu_type: relu_leakyrelu_relu6\n"
        "    dpu.alu_parallel: 0\n    dpu.alu_leakyrelu: false\n    dpu.save_argmax: true\n    dpu.clock_gating: false\n"
        "    dpu.clock_mhz: 300\n"
    )
    write_study(folder, n_trials=10, extra=extra)
    first = explore("run", "study.yaml", "--no-progress", "--no-report", cwd=folder)
    second = explore("run", "study.yaml", "--no-progress", "--no-report", cwd=folder)
    for process in (first, second):
        code, _, err = finish(process)
        assert code == 0, err
    trials = check_after_recovery(folder, {}, 10)
    assert evaluated_twice(trials) == []
    assert any("same_as" in t.user_attrs for t in trials)  # the collisions happened and were reused
    check_report_and_export(folder)


def test_workers_flag_and_a_killed_parent_leave_no_orphan(tmp_path: Path) -> None:
    folder = tmp_path / "workers"
    write_study(folder, n_trials=40)
    process = explore("run", "study.yaml", "--no-progress", "--workers", "2", cwd=folder)
    wait_for_trials(folder, 3)
    process.kill()  # the parent only: its worker must notice and stop
    process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not _workers_of(process.pid):
            break
        time.sleep(0.2)
    assert not _workers_of(process.pid), "an orphaned worker kept running"
    before = completed(read_trials(folder))
    run_to_end(folder, "--n-trials", str(len(read_trials(folder)) + 2), "--workers", "2")
    trials = check_after_recovery(folder, before, len(before) + 2)
    assert evaluated_twice(trials) == []


def _workers_of(pgid: int) -> list[int]:
    """Processes still in the killed run's process group (its spawned workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_stale_locks_are_released_without_spinning(tmp_path: Path) -> None:
    target = tmp_path / "study.journal"
    target.write_text("")
    # a lock left by a dead process of this host: released at once
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "study.journal.lock").write_text(json.dumps(Worker(Worker.current().host, dead.pid, None).to_dict()))
    lock = JournalLock(str(target), stale_after=60)
    start = time.monotonic()
    assert lock.acquire() and time.monotonic() - start < 2
    lock.release()
    # Optuna's own symlink lock with a relative target that points nowhere (after a kill -9): released after
    # the bounded wait, sleeping meanwhile
    os.symlink("somewhere/relative", tmp_path / "study.journal.lock")
    lock = JournalLock(str(target), stale_after=1.5)
    cpu, start = time.process_time(), time.monotonic()
    assert lock.acquire()
    assert 1.5 <= time.monotonic() - start < 6 and time.process_time() - cpu < 0.5
    lock.release()
    assert not (tmp_path / "study.journal.lock").exists()
