"""The declared dependency floors hold the APIs the code calls. (tests/study and tests/reliability also
passed against the lowest declared Optuna, 5.0.0, in a venv on 2026-12-02; 4.x lacks set_constraint.)"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import optuna
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def floors() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        name, _, floor = dep.partition(">=")
        out[name.strip()] = floor.split(",")[0].strip()
    return out


def test_every_dependency_has_a_floor_that_is_installed() -> None:
    declared = floors()
    assert set(declared) == {"numpy", "pyyaml", "onnx", "onnxruntime", "optuna", "pandas", "plotly", "jinja2", "pillow"}
    for name, floor in declared.items():
        assert floor, f"{name} has no floor"
        assert Version(version(name)) >= Version(floor), f"{name} {version(name)} is below the declared {floor}"


def test_the_optuna_apis_the_study_uses_exist_from_the_floor() -> None:
    assert Version(floors()["optuna"]) >= Version("5.0")  # set_constraint and constraints came in 5.0
    trial_api = ("set_constraint", "set_user_attr", "suggest_categorical", "suggest_int", "suggest_float")
    assert all(hasattr(optuna.trial.Trial, name) for name in trial_api)
    assert isinstance(optuna.trial.FrozenTrial.constraints, property)
    for name in ("ask", "tell", "enqueue_trial", "get_trials", "set_user_attr"):
        assert hasattr(optuna.Study, name)
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import BaseJournalFileLock

    assert "lock_obj" in JournalFileBackend.__init__.__code__.co_varnames
    assert {"acquire", "release"} <= set(BaseJournalFileLock.__abstractmethods__)
    for sampler in ("NSGAIISampler", "TPESampler", "RandomSampler", "GridSampler", "GPSampler"):
        assert hasattr(optuna.samplers, sampler)
