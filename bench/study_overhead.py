"""Per-trial cost of the explorer with accuracy cached, against a bare Optuna study with the same sampler
and storage, told the same objective values and constraints, side by side in one run. Target (issue #16): within
1.5x of bare Optuna (issue #5 asked for 2x).

Run: python bench/study_overhead.py [--trials 100]
The explorer runs the bundled example study twice on one journal: the first pass fills the accuracy
cache, the second (timed) pass re-evaluates the same design points through the full per-trial path
(suggest, design point, resources, placements, cached accuracy, latency estimate, artifacts, tell).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from explorer.hardware.config import resolve
from explorer.hardware.dpu_conf import render_dpu_conf
from explorer.study.config import load_study
from explorer.study.design_metrics import StudyContext
from explorer.study.runner import make_sampler, write_artifacts
from explorer.study.search_space import design_point, suggest

EXAMPLE = Path(__file__).parents[1] / "examples" / "pose" / "study_ultra96.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_study(EXAMPLE).with_output(Path(tmp) / "out").with_run(n_trials=args.trials)
        ctx = StudyContext(cfg, cache_dir=Path(tmp) / "cache")
        directions = [o.direction for o in cfg.objectives]

        def journal(name: str) -> optuna.storages.JournalStorage:
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(Path(tmp) / f"{name}.journal")))

        # pass 1 (untimed): fill the accuracy cache for the design points the seeded sampler will ask for
        warm = optuna.create_study(
            storage=journal("warm"), sampler=make_sampler(cfg, ctx.space, cfg.run.seed), directions=directions
        )
        points: list[dict[str, Any]] = []
        told: list[tuple[list[float], dict[str, float]]] = []  # what each trial tells: the bare run tells the same
        for _ in range(args.trials):
            trial = warm.ask()
            values = suggest(trial, ctx.space, ctx.facts)
            points.append(values)
            metrics = ctx.metrics(design_point(values, ctx.space, ctx.board, ctx.layers, ctx.db))
            told.append(([metrics.values[o.metric] for o in cfg.objectives], metrics.constraints))
            for name, value in metrics.constraints.items():  # as the timed passes do: the sampler sees one history
                trial.set_constraint(name, value)
            warm.tell(trial, told[-1][0])

        def explorer_run() -> float:
            study = optuna.create_study(
                storage=journal(f"explorer{time.time_ns()}"),
                sampler=make_sampler(cfg, ctx.space, cfg.run.seed),
                directions=directions,
            )
            start = time.perf_counter()
            for i in range(args.trials):
                trial = study.ask()
                values = suggest(trial, ctx.space, ctx.facts)
                point = design_point(values, ctx.space, ctx.board, ctx.layers, ctx.db)
                metrics = ctx.metrics(point)
                for name, value in metrics.constraints.items():
                    trial.set_constraint(name, value)
                write_artifacts(
                    cfg.store.output / "trials" / f"{i:05d}",
                    point.to_dict(),
                    metrics,
                    render_dpu_conf(resolve(point.dpu, ctx.db), ctx.board),
                )
                trial.set_user_attr("metrics", metrics.values)
                study.tell(trial, [metrics.values[o.metric] for o in cfg.objectives])
            return (time.perf_counter() - start) / args.trials

        def bare_run() -> float:
            study = optuna.create_study(
                storage=journal(f"bare{time.time_ns()}"),
                sampler=make_sampler(cfg, ctx.space, cfg.run.seed),
                directions=directions,
            )
            start = time.perf_counter()
            for i in range(args.trials):  # the sampler sees the same values as the explorer's: the same work
                trial = study.ask()
                suggest(trial, ctx.space, ctx.facts)
                for name, value in told[i][1].items():
                    trial.set_constraint(name, value)
                study.tell(trial, told[i][0])
            return (time.perf_counter() - start) / args.trials

        explorer, bare = [], []
        for _ in range(3):  # interleaved, so both see the same machine load
            bare.append(bare_run())
            explorer.append(explorer_run())
        e, b = statistics.median(explorer), statistics.median(bare)
        print(f"{args.trials} trials per run, {cfg.run.sampler}, journal file storage, medians of 3 interleaved runs")
        print(f"  bare Optuna (told the same values): {b * 1e3:7.2f} ms/trial  ({1 / b:6.1f} trials/s)")
        print(f"  explorer, accuracy cached:       {e * 1e3:7.2f} ms/trial  ({1 / e:6.1f} trials/s)")
        print(f"  ratio explorer / bare:           {e / b:7.2f}  (target <= 1.5, issue #16)")


if __name__ == "__main__":
    main()
