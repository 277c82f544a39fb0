"""The study loop end to end on the bundled example model (small data)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from explorer.study.config import StudyConfig, load_study
from explorer.study.design_metrics import StudyContext
from explorer.study.runner import Progress, run_study
from explorer.study.store import finished_count

EXAMPLE = Path(__file__).parents[2] / "examples" / "pose"


def small_study(tmp_path: Path, more: str = "", **extra: object) -> StudyConfig:
    text = (
        f"model: {EXAMPLE / 'mobilepose_dsnt.onnx'}\ndata: pose-synth:12:3\ncalibration_data: pose-synth:6:2\n"
        "board: kv260\nsampler: random\nn_trials: 5\noutput: out\n"
        "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n"
    ) + more
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return load_study(path).with_run(**extra)


@pytest.mark.slow
def test_run_records_metrics_artifacts_and_resumes(tmp_path: Path) -> None:
    cfg = small_study(tmp_path)
    study = run_study(cfg, progress=False)
    assert finished_count(study) == 5
    trial = next(t for t in study.trials if t.state.name == "COMPLETE")
    assert {"fps_multi", "euclidean_error", "lut", "pck"} <= set(trial.user_attrs["metrics"])
    assert trial.user_attrs["sources"]["euclidean_error"] == "measured" and trial.user_attrs["sources"]["lut"] == "model"
    assert "resources" in trial.constraints
    low, high = trial.user_attrs["details"]["intervals"]["fps_multi"]  # the estimate's 80 % interval is recorded
    assert low < trial.user_attrs["metrics"]["fps_multi"] < high
    layers = trial.user_attrs["details"]["layers"]  # per layer against the unpruned model (the report's view)
    assert len(layers["name"]) == len(layers["time_b_ms"]) > 10 and set(layers["verdict"]) <= {"", "shorter"} | {
        v for v in layers["verdict"] if v.startswith("not shorter")
    }
    folder = Path(trial.user_attrs["artifacts"])
    assert {p.name for p in folder.iterdir()} == {"arch.json", "dpu_conf.vh", "partition.json", "metrics.json"}
    assert json.loads((folder / "arch.json").read_text())["fingerprint"].startswith("0x1")
    # rerunning the same study with a larger budget resumes it
    study = run_study(cfg.with_run(n_trials=7), progress=False)
    assert finished_count(study) == 7 and len(study.trials) == 7


def test_a_pynq_study_keeps_designs_with_one_dpu_subgraph(tmp_path: Path) -> None:
    """`estimator.runtime: pynq`: a design point whose partition has other than one DPU subgraph is infeasible."""
    from explorer.study.runner import load_records

    cfg = small_study(tmp_path, "estimator: {runtime: pynq}\n").with_run(n_trials=3)
    run_study(cfg, progress=False)
    done = [r for r in load_records(cfg) if r.state == "COMPLETE"]
    assert done
    for record in done:
        subgraphs = record.metrics["dpu_subgraphs"]
        assert record.constraints["runtime_subgraphs"] == abs(subgraphs - 1)
        assert record.feasible == (subgraphs == 1 and record.constraints["resources"] <= 0)


@pytest.mark.slow
def test_failed_and_interrupted_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = small_study(tmp_path)
    calls = {"n": 0}
    original = StudyContext.metrics

    def flaky(self: StudyContext, point: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated failure")
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, point)  # type: ignore[arg-type]

    monkeypatch.setattr(StudyContext, "metrics", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, progress=False)
    from explorer.study.store import storage_for

    study = optuna.load_study(study_name=cfg.store.study_name, storage=storage_for(cfg.store.url))
    states = [(t.state.name, t.user_attrs.get("fail_reason", "")) for t in study.trials]
    assert states[1] == ("FAIL", "RuntimeError: simulated failure")
    assert states[3] == ("FAIL", "interrupted by the user")
    assert all(s != "RUNNING" for s, _ in states)  # a consistent study
    monkeypatch.setattr(StudyContext, "metrics", original)
    study = run_study(cfg, progress=False)
    assert finished_count(study) == 5


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path: Path) -> None:
    cfg = small_study(tmp_path, n_trials=6)
    study = run_study(cfg, workers=2, progress=False)
    assert finished_count(study) >= 6
    assert len({t.number for t in study.trials}) == len(study.trials)
    states = [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    assert all(state == "COMPLETE" for _, state, _ in states), states  # none failed, none left queued (queue_lock)


def test_the_room_for_proposals_counts_every_trial_the_study_has(tmp_path: Path) -> None:
    """What a completion may queue: the trials left once the finished (not the interrupted), the queued and the
    other running trials are counted, as the storage has them now; at most its share (queue_limit: 4 here)."""
    from explorer.study.record import FAIL_REASON
    from explorer.study.runner import room

    cfg = small_study(tmp_path, n_trials=7)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(2):
        study.tell(study.ask(), [1.0, 1.0])
    interrupted = study.ask()
    interrupted.set_user_attr(FAIL_REASON, "interrupted by the user")  # does not count: it is run again
    study.tell(interrupted, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({})
    other, mine = study.ask(), study.ask()  # the first takes the queued trial: it runs now
    study.enqueue_trial({})
    assert other.number == 3 and room(cfg, study, mine) == 7 - 2 - 1 - 1
    study.tell(other, [1.0, 1.0])
    study.tell(study.ask(), [1.0, 1.0])  # the queued one, finished
    study.enqueue_trial({})
    study.enqueue_trial({})
    assert room(cfg, study, mine) == 7 - 4 - 2
    assert room(small_study(tmp_path, n_trials=100), study, mine) == 4  # its share, not all that is left


def test_progress_in_a_log_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study(directions=["maximize", "maximize"])
    log = Progress(10, start=0.0, enabled=True, interactive=False, log_every=30.0)
    log.update(1, study)
    log.update(2, study)  # within log_every of the first: nothing
    log.update(10, study, force=True)
    lines = capsys.readouterr().err.splitlines(keepends=True)
    assert [line.split(",")[0] for line in lines] == ["1/10 trials", "10/10 trials"]
    assert all(line.endswith("\n") and "\r" not in line and "[" not in line for line in lines)
    tty = Progress(10, start=0.0, enabled=True, interactive=True)
    tty.update(5, study)
    assert capsys.readouterr().err.startswith("\r[" + "#" * 15)


def test_a_study_times_with_its_calibration_profile(tmp_path: Path) -> None:
    """`estimator: {calibration: PROFILE}`: the study's latency model is the profile's, not the shipped fit."""
    from explorer.compress.context import CompressOptions

    (tmp_path / "kv260.yaml").write_text(
        "kind: dpu-explorer latency calibration profile\nboard: KV260\nparameters: {arm_speed: 0.5, ddr_efficiency: 0.5}\n"
    )
    base = StudyContext(small_study(tmp_path)).estimator(CompressOptions())
    calibrated = StudyContext(small_study(tmp_path, "estimator: {calibration: kv260.yaml}\n"))
    fitted = calibrated.estimator(CompressOptions())
    assert fitted.params.ddr_efficiency == 0.5 and base.params.ddr_efficiency != 0.5
    kind = calibrated.board.cpu.kind
    assert fitted.params.cpu[kind].relative_speed == 0.5 * base.params.cpu[kind].relative_speed
