from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from explorer.errors import ConfigError
from explorer.hardware.config import check_config
from explorer.hardware.database import load_database
from explorer.study.search_space import (
    DesignPoint,
    board_facts,
    check_space,
    design_point,
    load_space,
    resolve_space_file,
    suggest,
)

DB = load_database()


def files(*names: str) -> list[Path]:
    return [p for p in (resolve_space_file(n, Path(".")) for n in names) if p is not None]


def test_per_group_thresholds_and_layers_bound() -> None:
    space = load_space(files("dpu_zynqmp.yaml", "pruning.yaml", "split.yaml"), {"pruning.groups": 3}, layers=84)
    names = space.names()
    assert [n for n in names if n.startswith("pruning.threshold")] == [f"pruning.threshold_g{i}" for i in range(3)]
    split = next(p for p in space.params if p.name == "split.split")
    assert (split.low, split.high) == (0, 84)


def test_overrides_change_or_fix_parameters() -> None:
    space = load_space(files("dpu_zynqmp.yaml"), {"dpu.arch": {"choices": ["B1600", "B2304"]}, "dpu.cores": 1}, layers=10)
    arch = next(p for p in space.params if p.name == "dpu.arch")
    assert arch.choices == ("B1600", "B2304") and "dpu.cores" not in space.names() and space.fixed["dpu"]["cores"] == 1
    with pytest.raises(ConfigError, match=r"did you mean 'dpu\.arch'"):
        load_space(files("dpu_zynqmp.yaml"), {"dpu.ach": {"choices": ["B512"]}}, layers=10)


@pytest.mark.parametrize("board_name", ["ultra96-v2", "kv260", "zcu104", "pynq-z2", "zuboard-1cg"])
def test_every_sample_is_a_legal_configuration(board_name: str) -> None:
    board = DB.board(board_name)
    dpu_file = "dpu_zynq7000.yaml" if board.family == "zynq7000" else "dpu_zynqmp.yaml"
    space = load_space(files(dpu_file, "pruning.yaml", "split.yaml"), {}, layers=50)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    uram_seen = set()
    for _ in range(60):
        trial = study.ask()
        values: dict[str, Any] = suggest(trial, space, board_facts(board))
        point = design_point(values, space, board, 50, DB)
        assert check_config(point.dpu, board.device) == [], values
        assert DesignPoint.from_dict(point.to_dict()) == point  # what a trial stores reads back the same
        uram_seen.add(point.dpu.uram_per_core)
        assert ("dpu.uram_share" in values) == (board.device.uram > 0)  # conditional on the part having URAM
        study.tell(trial, 0.0)
    assert (len(uram_seen) > 1) == (board.device.uram > 0)


def test_the_channel_multiple_can_follow_the_chosen_dpu() -> None:
    board = DB.board("zcu104")
    space = load_space(
        files("dpu_zynqmp.yaml", "pruning.yaml"),
        {"pruning.multiple": "dpu", "dpu.arch": {"choices": ["B512", "B4096"]}},
        layers=10,
    )
    for arch in ("B512", "B4096"):
        point = design_point({"dpu.arch": arch}, space, board, 10, DB)
        assert point.prune_multiple == DB.ip.architectures[arch].ocp  # 8 on a B512, 16 on a B4096
    bad = load_space(files("dpu_zynqmp.yaml", "pruning.yaml"), {"pruning.multiple": {"choices": [4, "cpu"]}}, layers=10)
    problems = check_space(bad, board, 10, DB, board_facts(board))
    assert any("positive integer or 'dpu', got ['cpu']" in p.message for p in problems)


def test_thresholds_by_effect_offer_one_value_per_distinct_pruning() -> None:
    """Thresholds that prune the same channels are one choice: a run of grid values with no channel's APoZ
    between them becomes its highest value; a group whose channels are all below the grid is a single choice."""
    from explorer.study.search_space import Param, SearchSpace, thresholds_by_effect

    grid = {"kind": "float", "low": 0.5, "high": 1.0, "step": 0.01}
    params = tuple(
        Param(f"pruning.threshold_g{g}", "float", (), grid["low"], grid["high"], grid["step"], by_effect=g < 2) for g in range(3)
    )
    space = SearchSpace(params, {"pruning": {}}, 3)
    apoz = {"g0": [[0.555, 0.62], [0.62]], "g1": [[0.1, 0.2]], "g2": [[0.7]]}
    bound = thresholds_by_effect(space, apoz)
    g0, g1, g2 = bound.params
    assert g0.kind == "categorical" and g0.choices == (0.55, 0.62, 1.0)  # cuts 3 channels, 2, none
    assert g1.choices == (1.0,)  # nothing to cut anywhere on the grid: one point, not 51
    assert g2 == params[2]  # not asked for: unchanged


def test_by_effect_is_only_for_thresholds() -> None:
    from explorer.datafiles import data_path
    from explorer.study.search_space import load_space

    with pytest.raises(
        ConfigError, match=r"by_effect: expected true or false, on a pruning threshold only; got True on pruning\.multiple"
    ):
        load_space([data_path("search_spaces") / "pruning.yaml"], {"pruning.multiple": {"by_effect": True}})
    space = load_space([data_path("search_spaces") / "pruning.yaml"], {"pruning.threshold": {"by_effect": True}})
    assert all(p.by_effect for p in space.params if "threshold" in p.name)


def test_a_study_samples_thresholds_by_effect(tmp_path: Path) -> None:
    from explorer.study.design_metrics import StudyContext
    from explorer.study.runner import load_records, run_study
    from tests.study.test_runner import small_study

    more = "search_space:\n  files: [dpu_zynqmp.yaml, pruning.yaml, split.yaml]\n"
    cfg = small_study(tmp_path, more + "  overrides:\n    pruning.threshold: {by_effect: true}\n").with_run(n_trials=3)
    ctx = StudyContext(cfg)
    thresholds = [p for p in ctx.space.params if p.name.startswith("pruning.threshold")]
    assert len(thresholds) == 4 and all(p.kind == "categorical" and 1 <= len(p.choices) < 51 for p in thresholds)
    run_study(cfg, progress=False, ctx=ctx)
    for record in load_records(cfg):
        for p in thresholds:
            assert record.params[p.name] in p.choices
