"""study.yaml validation: every problem, with its YAML path, in one error (fixtures in tests/data/studies/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.errors import ConfigError
from explorer.study.config import load_study

STUDIES = Path(__file__).parents[1] / "data" / "studies"
EXAMPLE = Path(__file__).parents[2] / "examples" / "pose" / "study_ultra96.yaml"


def problems(name: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_study(STUDIES / name)
    return {p.path: p.message for p in info.value.problems}


def test_bundled_examples_are_valid() -> None:
    cfg = load_study(EXAMPLE)
    assert cfg.board == "Ultra96-V2" and cfg.run.n_trials == 200
    assert cfg.run.sampler == "tpe" and cfg.run.hardware_search == "complete"
    assert [o.metric for o in cfg.objectives] == ["fps_multi", "euclidean_error", "lut"]
    assert cfg.model.path.is_file() and cfg.store.url.startswith("journal:") and cfg.store.url.endswith("study.journal")
    assert [b.metric for b in cfg.constraints.bounds] == ["pck"] and cfg.constraints.bounds[0].kind == "min"
    assert load_study(EXAMPLE.with_name("study_kv260.yaml")).board == "KV260"


def test_typo_gets_did_you_mean() -> None:
    assert problems("bad-typo.yaml") == {"objectivs": "unknown key 'objectivs'; did you mean 'objectives'?"}


def test_every_problem_is_reported_with_its_path() -> None:
    found = problems("bad-types.yaml")
    assert found["model"].startswith("no such file")
    assert "unknown board 'ultra69'" in found["board"] and "Did you mean 'Ultra96-V2'?" in found["board"]
    assert "did you mean 'nsga2'" in found["sampler"]
    assert "expected one of complete, sample" in found["hardware_search"]
    assert found["pruning.abstain"] == "expected true or false, got 'maybe'"
    assert found["pruning.selection"] == "expected one of reconstruction, apoz, got 'thinet'"
    assert "positive integer" in found["n_trials"] and "integer" in found["seed"]
    assert "did you mean 'fps_multi'" in found["objectives[0].metric"]
    assert "minimize or maximize" in found["objectives[1].direction"]
    assert "(0, 1]" in found["constraints.ceilings.lut"]
    assert "did you mean 'bram36'" in found["constraints.ceilings.bram"]
    assert "positive integer" in found["estimator.threads"]


def test_paths_are_relative_to_the_study_file(tmp_path: Path) -> None:
    study = tmp_path / "sub" / "s.yaml"
    study.parent.mkdir()
    (tmp_path / "sub" / "m.onnx").write_bytes(EXAMPLE.with_name("mobilepose_dsnt.onnx").read_bytes())
    study.write_text("model: m.onnx\ndata: pose-synth:8:1\nboard: kv260\noutput: out\n")
    cfg = load_study(study)
    assert cfg.model.path == (tmp_path / "sub" / "m.onnx").resolve() and cfg.store.output == (tmp_path / "sub" / "out").resolve()
    assert cfg.space.files[0].name == "dpu_zynqmp.yaml"  # the board's family picks the default DPU space


def test_the_search_space_is_checked_before_any_model_is_read(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_text("not a model: load_study must not read it")
    study = tmp_path / "s.yaml"
    study.write_text("model: m.onnx\ndata: pose-synth:8:1\nboard: pynq-z2\nsearch_space: {overrides: {dpu.softmax: true}}\n")
    with pytest.raises(ConfigError) as info:
        load_study(study)
    (problem,) = info.value.problems
    assert problem.path == "search_space.overrides.dpu.softmax" and "softmax-zynq7000" in problem.message


def test_high_layers_stays_symbolic_until_the_model_is_known() -> None:
    cfg = load_study(EXAMPLE)
    (split,) = [p for p in cfg.space.params if p.name == "split.split"]
    assert split.high_is_layers
    (bound,) = [p for p in cfg.space.bind(57).params if p.name == "split.split"]
    assert bound.high == 57 and not bound.high_is_layers


def test_sections_are_frozen(tmp_path: Path) -> None:
    import dataclasses

    cfg = load_study(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run.n_trials = 3  # type: ignore[misc]
    assert cfg.with_run(n_trials=3).run.n_trials == 3 and cfg.run.n_trials == 200
    moved = cfg.with_output(tmp_path / "o")
    assert (
        moved.store.output == (tmp_path / "o").resolve()
        and moved.store.url == f"journal:{(tmp_path / 'o' / 'study.journal').resolve()}"
    )


def test_scale_out_settings_are_checked(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(EXAMPLE.with_name("mobilepose_dsnt.onnx").read_bytes())
    study = tmp_path / "s.yaml"
    base = "model: m.onnx\ndata: pose-synth:8:1\nboard: kv260\n"
    study.write_text(base + "heartbeat_interval: 10\ngrace_period: 30\nmax_retry: 0\ncache: shared/cache\n")
    store = load_study(study).store
    assert (store.heartbeat_interval, store.grace_period, store.max_retry) == (10, 30, 0)
    assert store.cache_dir == (tmp_path / "shared" / "cache").resolve() and store.cache_enabled
    study.write_text(base + "cache: false\n")
    store = load_study(study).store
    assert not store.cache_enabled and store.cache_dir == store.output / "cache"
    assert (store.heartbeat_interval, store.grace_period, store.max_retry) == (60, 180, 3)
    study.write_text(base + "heartbeat_interval: 0\ngrace_period: 5\nmax_retry: -1\ncache: 3\n")
    with pytest.raises(ConfigError) as info:
        load_study(study)
    found = {p.path: p.message for p in info.value.problems}
    assert "integer >= 1" in found["heartbeat_interval"] and "integer >= 0" in found["max_retry"]
    assert "folder for the accuracy cache" in found["cache"]
    study.write_text(base + "heartbeat_interval: 30\ngrace_period: 30\n")
    with pytest.raises(ConfigError, match="longer than heartbeat_interval"):
        load_study(study)
