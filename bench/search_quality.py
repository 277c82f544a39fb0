"""How close the study's search gets to the true Pareto front, on subspaces small enough to enumerate.

Each subspace is a study of the bundled pose example (its data, evaluator and estimator settings) with a
reduced search space; every design point of it is evaluated (accuracy measured once per model variant and
placement, the rest estimated) to get the true front. Then `explore run`'s own loop (`run_study`) runs the
study with each sampler, with the hardware completion (study/completion.py, `hardware_search: complete`) and
without it (`sample`), several seeds each, and the hypervolume of the feasible trials after 50, 100 and 200
trials is reported as a fraction of the true front's (objectives normalised over all feasible points,
reference 1.1). The default is TPE with the completion.

Subspaces:
  ultra96  DPU arch x cores x RAM usage x clock x split, on an Ultra96-V2; no pruning, fp32 CPU part
           (accuracy the same everywhere); objectives fps_multi and LUT; must fit the device.
  kv260    the KV260 example with pruning held fixed (none): DPU arch x cores x RAM usage x UltraRAM share x
           DSP usage x clock x split x CPU precision; the example's objectives (fps_multi, euclidean_error,
           LUT) and constraints (fit, PCK >= 0.5).

Run: python bench/search_quality.py [--seeds 3] [--subspace ultra96|kv260|both]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from explorer.perf.estimate import PerfEstimate
from explorer.report.data import hypervolume
from explorer.study.completion import minimised
from explorer.study.config import StudyConfig, load_study
from explorer.study.design_metrics import StudyContext
from explorer.study.runner import run_study
from explorer.study.search_space import design_point, param_values

EXAMPLE = Path(__file__).parents[1] / "examples" / "pose"
BUDGETS = (50, 100, 200)
ARCHS = ["B512", "B800", "B1024", "B1152", "B1600", "B2304", "B3136", "B4096"]
SUBSPACES: dict[str, dict[str, Any]] = {
    "ultra96": {
        "board": "ultra96-v2",
        "dpu": {
            "arch": {"choices": ARCHS},
            "cores": {"kind": "int", "low": 1, "high": 4},
            "ram_usage": {"choices": ["low", "high"]},
            "clock_mhz": {"choices": [150, 200, 250]},
        },
        "split": {"split": {"kind": "int", "low": 0, "high": "layers"}},
        "fixed_split": {"cpu_precision": "fp32"},
        "objectives": [{"metric": "fps_multi", "direction": "maximize"}, {"metric": "lut", "direction": "minimize"}],
        "constraints": {"fit": True},
    },
    "kv260": {
        "board": "kv260",
        "dpu": {
            "arch": {"choices": ARCHS},
            "cores": {"kind": "int", "low": 1, "high": 4},
            "ram_usage": {"choices": ["low", "high"]},
            "uram_share": {"choices": [0.0, 0.5, 1.0]},
            "dsp_usage": {"choices": ["low", "high"]},
            "clock_mhz": {"choices": [200, 250, 300]},
        },
        "split": {"split": {"kind": "int", "low": 0, "high": "layers"}, "cpu_precision": {"choices": ["fp32", "int8"]}},
        "fixed_split": {},
        "objectives": [
            {"metric": "fps_multi", "direction": "maximize"},
            {"metric": "euclidean_error", "direction": "minimize"},
            {"metric": "lut", "direction": "minimize"},
        ],
        "constraints": {"fit": True, "min_accuracy": {"metric": "pck", "value": 0.5}},
    },
}
RUNS = [
    ("tpe", "complete"),
    ("tpe", "sample"),
    ("nsga2", "complete"),
    ("nsga2", "sample"),
    ("random", "complete"),
    ("random", "sample"),
]


def write_study(folder: Path, name: str, cache: Path) -> Path:
    """The subspace as a study file (and its two space files) in `folder`."""
    sub = SUBSPACES[name]
    (folder / "dpu.yaml").write_text(yaml.safe_dump({"name": "dpu", "parameters": sub["dpu"]}))
    (folder / "split.yaml").write_text(yaml.safe_dump({"name": "split", "parameters": sub["split"], "fixed": sub["fixed_split"]}))
    study = {
        "model": str(EXAMPLE / "mobilepose_dsnt.onnx"),
        "data": "pose-synth:200:3",
        "calibration_data": "pose-synth:64:2",
        "evaluator": "pose",
        "board": sub["board"],
        "search_space": {"files": ["dpu.yaml", "split.yaml"]},
        "objectives": sub["objectives"],
        "constraints": sub["constraints"],
        "n_trials": max(BUDGETS),
        "output": str(folder / "out"),
        "cache": str(cache),
        "estimator": {"threads": 4, "pre_ms": 1.0, "post_ms": 0.5},
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def nondominated(points: np.ndarray) -> np.ndarray:
    """The rows no other row dominates (minimisation), by repeated filtering."""
    order = points[np.lexsort(points.T[::-1])]
    kept: list[np.ndarray] = []
    for p in order:
        if not any(np.all(q <= p) for q in kept):
            kept.append(p)
    return np.array(kept)


def every_point(ctx: StudyContext, cfg: StudyConfig) -> np.ndarray:
    """The objective vectors (minimised) of every feasible design point of the study's space."""
    objectives = [(o.metric, o.direction) for o in cfg.objectives]
    params = ctx.space.params
    dpu = [p for p in params if p.name.startswith("dpu.")]
    model_side = [p for p in params if not p.name.startswith("dpu.")]
    found: list[np.ndarray] = []
    for model_values in _grid(model_side):
        by_placement: dict[Any, tuple[dict[str, float], dict[Any, PerfEstimate]]] = {}
        rows = []
        for hw_values in _grid(dpu):
            point = design_point({**model_values, **hw_values}, ctx.space, ctx.board, ctx.layers, ctx.db)
            estimator = ctx.estimator(ctx.options(point))
            placements = estimator.placements(point.dpu, point.split)
            if placements not in by_placement:
                by_placement[placements] = (ctx.metrics(point).values, {})
            accuracy, cache = by_placement[placements]
            hw = ctx.hardware(point, estimator, cache)
            merged = {**accuracy, **hw.values}
            if all(v <= 0 for v in ctx.constraints(merged, hw).values()):
                rows.append(minimised(merged, objectives))
        if rows:
            found.append(nondominated(np.array(rows)))
    return nondominated(np.concatenate(found))


def _grid(params: list[Any]) -> list[dict[str, Any]]:
    combos: list[dict[str, Any]] = [{}]
    for p in params:
        combos = [{**c, p.name: v} for c in combos for v in param_values(p)]
    return combos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--subspace", choices=[*SUBSPACES, "both"], default="both")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = list(SUBSPACES) if args.subspace == "both" else [args.subspace]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            folder = Path(tmp) / name
            folder.mkdir()
            cfg = load_study(write_study(folder, name, Path(tmp) / "cache"))
            ctx = StudyContext(cfg)
            start = time.perf_counter()
            true = every_point(ctx, cfg)
            lo, hi = true.min(axis=0), true.max(axis=0)  # the front spans the feasible ranges that matter
            reference = np.full(true.shape[1], 1.1)

            def hv(points: np.ndarray, lo: np.ndarray = lo, hi: np.ndarray = hi, reference: np.ndarray = reference) -> float:
                if len(points) == 0:
                    return 0.0
                scaled = (points - lo) / np.where(hi - lo > 0, hi - lo, 1)
                return hypervolume(nondominated(scaled), reference)

            whole = hv(true)
            print(
                f"\n{name}: {len(ctx.space.params)} parameters, true front of {len(true)} designs "
                f"(enumerated in {time.perf_counter() - start:.0f} s)\n"
            )
            print("| sampler | hardware_search | " + " | ".join(f"{b} trials" for b in BUDGETS) + " | s per run |")
            print("|---|---|" + "---:|" * (len(BUDGETS) + 1))
            for sampler, search in RUNS:
                fractions: dict[int, list[float]] = {b: [] for b in BUDGETS}
                seconds = []
                for seed in range(args.seeds):
                    run_cfg = cfg.with_run(sampler=sampler, hardware_search=search, seed=seed, n_trials=max(BUDGETS))
                    run_cfg = run_cfg.with_output(folder / f"{sampler}-{search}-{seed}")
                    t0 = time.perf_counter()
                    study = run_study(run_cfg, progress=False, ctx=ctx)
                    seconds.append(time.perf_counter() - t0)
                    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
                    for budget in BUDGETS:
                        points = [
                            minimised(
                                dict(zip([o.metric for o in cfg.objectives], t.values, strict=True)),
                                [(o.metric, o.direction) for o in cfg.objectives],
                            )
                            for t in trials[:budget]
                            if t.state == optuna.trial.TrialState.COMPLETE and all(c <= 0 for c in (t.constraints or {}).values())
                        ]
                        fractions[budget].append(hv(np.array(points)) / whole)
                default = " (default)" if (sampler, search) == (cfg.run.sampler, cfg.run.hardware_search) else ""
                cells = " | ".join(f"{statistics.median(fractions[b]):.3f}" for b in BUDGETS)
                print(f"| {sampler}{default} | {search} | {cells} | {statistics.median(seconds):.0f} |", flush=True)


if __name__ == "__main__":
    main()
