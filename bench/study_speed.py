"""The example study's time per trial against its floor (issue #16): the floor is one onnxruntime pass of the
study's evaluation set through the float model, measured in the same run. Target: at most 3x the floor per
trial, and 200 trials in under a minute on 2 cores.

Run: python bench/study_speed.py [--n-trials 60] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from accuracy_evaluations import run_example  # bench/ is on the path of a bench script

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pose" / "study_ultra96.yaml"


def floor_seconds(repeat: int) -> float:
    """Median time of one onnxruntime pass over the example's evaluation set (200 pose-synth images)."""
    import onnx

    from explorer.data.loaders import load_data
    from explorer.runtime import run_model

    model = onnx.load(str(EXAMPLE.with_name("mobilepose_dsnt.onnx")))
    data = load_data("pose-synth:200:3", ["input"])
    run_model(model, data.inputs)  # warm-up: the session and the allocator
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run_model(model, data.inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-trials", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    floor = floor_seconds(args.repeat)
    wall, _ = run_example(args.n_trials)
    per_trial = wall / args.n_trials
    print(f"floor: one onnxruntime pass of 200 evaluation images: {floor * 1e3:.0f} ms (median of {args.repeat})")
    print(f"example study, {args.n_trials} trials: {wall:.1f} s wall (start-up included), {per_trial * 1e3:.0f} ms per trial")
    print(f"per trial / floor: {per_trial / floor:.1f}x (target <= 3x); 200 trials would take about {200 * per_trial:.0f} s")


if __name__ == "__main__":
    main()
