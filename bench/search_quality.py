"""How close the samplers get to the true Pareto front, on a subspace small enough to enumerate.

Subspace: DPU arch x cores x RAM usage x clock x split of the bundled example on an Ultra96-V2, with
accuracy held fixed (no pruning, fp32 CPU part). Objectives: maximise fps_multi, minimise LUT; designs
that do not fit the device are infeasible. Every point is estimated to get the true front; then NSGA-II,
TPE and random sampling (seeded) report the hypervolume they reach after 50, 100, 200 and 400 trials as
a fraction of the true front's (objectives normalised over all feasible points, reference 1.1).

Run: python bench/search_quality.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import numpy as np
import optuna

from explorer.graph.prepare import load_graph
from explorer.hardware.config import parse_dpu_config, resolve
from explorer.hardware.database import load_database
from explorer.hardware.resources import check_fit, estimate_resources
from explorer.perf.estimate import EstimateOptions, Estimator
from explorer.report.data import hypervolume, pareto_front

MODEL = Path(__file__).parents[1] / "examples" / "pose" / "mobilepose_dsnt.onnx"
ARCHS = ["B512", "B800", "B1024", "B1152", "B1600", "B2304", "B3136", "B4096"]
CORES, RAMS, CLOCKS = [1, 2, 3, 4], ["low", "high"], [150, 200, 250]
BUDGETS = (50, 100, 200, 400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    db = load_database()
    board = db.board("ultra96-v2")
    graph = load_graph(MODEL)
    est = Estimator(graph, board, db=db)
    splits = list(range(len(graph.layers) + 1))
    cache: dict[tuple[object, ...], tuple[float, float, bool]] = {}

    def evaluate(arch: str, cores: int, ram: str, clock: int, split: int) -> tuple[float, float, bool]:
        key = (arch, cores, ram, clock, split)
        if key not in cache:
            config = parse_dpu_config({"arch": arch, "cores": cores, "ram_usage": ram, "clock_mhz": clock}, board, db=db)
            fit = check_fit(estimate_resources(resolve(config, db)).total, board.device).fits
            perf = est.estimate(config, None if split == len(graph.layers) else split, EstimateOptions(threads=4))
            cache[key] = (perf.fps_multi, estimate_resources(resolve(config, db)).total.lut, fit)
        return cache[key]

    start = time.perf_counter()
    everything = [evaluate(*p) for p in itertools.product(ARCHS, CORES, RAMS, CLOCKS, splits)]
    feasible = np.array([(-fps, lut) for fps, lut, fits in everything if fits])
    lo, hi = feasible.min(axis=0), feasible.max(axis=0)
    reference = np.full(2, 1.1)

    def hv(points: np.ndarray) -> float:
        if len(points) == 0:
            return 0.0
        normalised = (points - lo) / np.where(hi - lo > 0, hi - lo, 1)
        return hypervolume(normalised[pareto_front(normalised.tolist())], reference)

    true = hv(feasible)
    print(
        f"{len(everything)} points enumerated ({len(feasible)} feasible) in {time.perf_counter() - start:.1f} s; "
        f"true front: {len(pareto_front(feasible.tolist()))} designs"
    )

    def sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=50)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        return optuna.samplers.RandomSampler(seed=seed)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"\nhypervolume reached / true hypervolume (median over {args.seeds} seeds)\n")
    print("| sampler | " + " | ".join(f"{b} trials" for b in BUDGETS) + " |")
    print("|---|" + "---:|" * len(BUDGETS))
    for name in ("nsga2", "tpe", "random"):
        fractions: dict[int, list[float]] = {b: [] for b in BUDGETS}
        for seed in range(args.seeds):
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler(name, seed))
            found: list[tuple[float, float]] = []
            for n in range(1, max(BUDGETS) + 1):
                trial = study.ask()
                point = (
                    trial.suggest_categorical("arch", ARCHS),
                    trial.suggest_categorical("cores", CORES),
                    trial.suggest_categorical("ram", RAMS),
                    trial.suggest_categorical("clock", CLOCKS),
                    trial.suggest_int("split", 0, len(graph.layers)),
                )
                fps, lut, fits = evaluate(*point)
                trial.set_constraint("fit", -1.0 if fits else 1.0)
                study.tell(trial, [fps, lut])
                if fits:
                    found.append((-fps, lut))
                if n in fractions:
                    fractions[n].append(hv(np.array(found)) / true)
        print(f"| {name} | " + " | ".join(f"{statistics.median(fractions[b]):.3f}" for b in BUDGETS) + " |")


if __name__ == "__main__":
    main()
