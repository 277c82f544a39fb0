"""Hardware completion: the DPU configurations proposed for a measured model variant (study/completion.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from explorer.study import completion
from explorer.study.completion import Candidate, Completion, dominates, front, local_search, minimised
from explorer.study.config import StudyConfig
from explorer.study.design_metrics import StudyContext
from explorer.study.record import PROPOSED_BY
from explorer.study.runner import run_study
from explorer.study.search_space import design_point
from explorer.study.store import finished_count
from tests.study.test_runner import small_study

SPACE = (
    "  - {metric: lut, direction: minimize}\n"  # a third objective, after small_study's two
    "search_space:\n  files: [dpu_zynqmp.yaml, split.yaml]\n  overrides:\n"
    "    dpu.clock_mhz: {choices: [200, 300]}\n    dpu.channel_augmentation: true\n    dpu.softmax: false\n"
    "    dpu.relu_type: relu_relu6\n    dpu.alu_parallel: 0\n    dpu.alu_leakyrelu: false\n    dpu.save_argmax: true\n"
    "    dpu.clock_gating: false\n    dpu.dsp_usage: high\n    split.cpu_precision: fp32\n"
)


def study(tmp_path: Path, **extra: object) -> StudyConfig:
    tmp_path.mkdir(exist_ok=True)
    return small_study(tmp_path, SPACE, **extra)


def trial_values(ctx: StudyContext) -> dict[str, object]:
    return {
        "dpu.arch": "B1600",
        "dpu.cores": 1,
        "dpu.ram_usage": "low",
        "dpu.uram_share": 0.0,
        "dpu.clock_mhz": 200,
        "split.split": ctx.layers,
    }


def test_dominance_and_front() -> None:
    assert dominates((1.0, 2.0), (1.0, 3.0)) and not dominates((1.0, 2.0), (1.0, 2.0)) and not dominates((0.0, 3.0), (1.0, 2.0))
    kept = front(
        [Candidate({"a": i}, v, True) for i, v in enumerate([(1.0, 3.0), (2.0, 2.0), (1.0, 3.0), (2.0, 4.0), (0.5, 5.0)])]
    )
    assert sorted(c.objectives for c in kept) == [(0.5, 5.0), (1.0, 3.0), (2.0, 2.0)]
    assert minimised({"fps": 10.0, "lut": 5.0}, [("fps", "maximize"), ("lut", "minimize")]) == (-10.0, 5.0)


def test_local_search_crosses_a_dominated_point_to_a_front_member_two_changes_away() -> None:
    """(1, 1) is on the front but both its single-change neighbours from the start are dominated: the nearest of
    them is a stepping stone once the members are searched; the farther one is not needed."""
    objectives = {(0, 0): (1.0, 1.0), (1, 0): (1.5, 1.5), (0, 1): (3.0, 3.0), (1, 1): (0.5, 3.0)}
    asked: list[tuple[int, ...]] = []

    def evaluate(point: tuple[int, ...]) -> Candidate:
        asked.append(point)
        return Candidate({"p": point}, objectives[point], True)

    found = local_search((0, 0), [[0, 1], [0, 1]], evaluate)
    assert sorted(c.objectives for c in found) == [(0.5, 3.0), (1.0, 1.0)]
    assert sorted(asked) == [(0, 0), (0, 1), (1, 0), (1, 1)]


@pytest.mark.slow
def test_candidates_are_what_their_trials_measure_and_local_search_finds_the_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = study(tmp_path)
    ctx = StudyContext(cfg)
    values = trial_values(ctx)
    point = design_point(values, ctx.space, ctx.board, ctx.layers, ctx.db)
    metrics = ctx.metrics(point)
    exact = Completion(ctx).candidates(values, point, metrics)  # 8 x 4 x 2 x 3 x 2 configurations: enumerated
    assert len(exact) >= 3 and all(c.feasible for c in exact)
    objectives = [(o.metric, o.direction) for o in cfg.objectives]
    for c in exact[:: max(1, len(exact) // 4)]:  # a proposal's objectives are exactly what its trial will record
        other = design_point(c.params, ctx.space, ctx.board, ctx.layers, ctx.db)
        assert minimised(ctx.metrics(other).values, objectives) == c.objectives
        assert {k: v for k, v in c.params.items() if not k.startswith("dpu.")} == {"split.split": ctx.layers}
    monkeypatch.setattr(completion, "EXACT_LIMIT", 0)  # the local search, on the same space
    searched = Completion(ctx).candidates(values, point, metrics)
    assert {c.objectives for c in searched} == {c.objectives for c in exact}


def test_proposals_are_cut_to_the_room_left_when_they_are_queued() -> None:
    """The room is asked again under the queue lock right before queuing: another worker may have queued trials
    while the candidates were searched, and a study must not end with queued trials never run. What is cut keeps
    the spread along the first objective, ends included."""
    study = optuna.create_study(directions=["minimize", "minimize"])
    trial = study.ask()
    candidates = [Candidate({"dpu.arch": f"B{n}"}, (float(n), -float(n)), True) for n in (512, 800, 1024, 1152, 1600)]

    class Proposer:
        def __init__(self) -> None:
            self.done: set[object] = set()
            self.objectives = [("fps_multi", "maximize"), ("lut", "minimize")]

        def group(self, values: object, metrics: object) -> int:
            return 1

        def propose(self, values: object, point: object, metrics: object, existing: object, limit: int) -> list[Candidate]:
            return candidates[:limit]

    rooms = iter([5, 2])  # 5 when the search starts; meanwhile another worker queued 3
    held: list[bool] = []
    locked = {"now": False}

    def room() -> int:
        held.append(locked["now"])
        return next(rooms)

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        locked["now"] = True
        yield
        locked["now"] = False

    queued = completion.queue_best_hardware(study, trial, Proposer(), None, None, room, lock)  # type: ignore[arg-type]
    assert queued == 2 and held == [False, True]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"dpu.arch": "B512"}, {"dpu.arch": "B1600"}]
    assert completion.spread(candidates, 3) == [candidates[0], candidates[2], candidates[4]]
    assert completion.spread(candidates, 0) == [] and completion.spread(candidates, 9) == candidates


@pytest.mark.slow
def test_a_study_queues_the_best_hardware_of_each_new_model_variant(tmp_path: Path) -> None:
    cfg = study(tmp_path, n_trials=14, sampler="random")
    result = run_study(cfg, progress=False)
    trials = result.get_trials(deepcopy=False)
    proposed = [t for t in trials if PROPOSED_BY in t.user_attrs]
    assert proposed and all(t.user_attrs[PROPOSED_BY].startswith("hardware completion of trial ") for t in proposed)
    assert finished_count(result) == 14 and len(trials) == 14  # proposals count toward n_trials and never exceed them
    assert not result.get_trials(states=(optuna.trial.TrialState.WAITING,))
    for t in proposed:  # the same model variant as the trial that proposed it
        source = trials[int(t.user_attrs[PROPOSED_BY].rsplit(" ", 1)[1])]
        assert t.params["split.split"] == source.params["split.split"]
    import pandas as pd

    from explorer.report.html import write_report

    page = write_report(cfg).read_text()  # the report and trials.csv say what proposed each trial
    assert "proposed by hardware completion of trial" in page or "proposed by the sampler" in page
    table = pd.read_csv(cfg.store.output / "trials.csv")
    assert set(table["proposed_by"]) == {"sampler", *(t.user_attrs[PROPOSED_BY] for t in proposed)}
    plain = run_study(study(tmp_path / "b", n_trials=6, sampler="random", hardware_search="sample"), progress=False)
    assert not any(PROPOSED_BY in t.user_attrs for t in plain.get_trials(deepcopy=False))


@pytest.mark.slow
def test_with_abstain_a_proposal_keeps_the_trials_output_channel_parallelism(tmp_path: Path) -> None:
    """`pruning: {abstain: true}` makes the pruned model depend on the DPU's OCP: a proposal for a variant must
    keep it (another OCP is another model, whose accuracy only a trial can measure)."""
    from explorer.hardware.config import resolve
    from explorer.study.record import TrialRecord
    from explorer.study.search_space import DesignPoint

    more = "search_space: {files: [dpu_zynqmp.yaml, pruning.yaml, split.yaml]}\npruning: {abstain: true}\n"
    result = run_study(small_study(tmp_path, more, n_trials=8), progress=False)
    trials = result.get_trials(deepcopy=False)

    def ocp(number: int) -> int:
        return resolve(DesignPoint.from_dict(TrialRecord.read(trials[number]).design_point).dpu).arch.ocp

    proposed = [t for t in trials if PROPOSED_BY in t.user_attrs]
    assert proposed and finished_count(result) == 8
    for t in proposed:
        assert ocp(t.number) == ocp(int(t.user_attrs[PROPOSED_BY].rsplit(" ", 1)[1]))
