"""Speed of `explore export` for one design point (issue #6: "well under a second").

Two paths, measured in this one process, medians over --repeat runs:
- hardware only: a DPU configuration and a board -> Vivado scripts, Vitis files, arch.json, README;
- a study trial with its model: the above plus the pruned model cut at the split (APoZ from the
  study's disk cache, calibration data generated), the int8 CPU part and the calibration file.
The study is a small run of the bundled example, made first in a temporary folder (not timed).

Run: python bench/export_speed.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import tempfile
import time
from pathlib import Path

from explorer.cli import main as explore
from explorer.study.config import load_study
from explorer.study.runner import run_study

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pose" / "mobilepose_dsnt.onnx"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = explore(argv)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"explore {' '.join(argv)} failed with {code}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        study = folder / "study.yaml"
        study.write_text(
            f"model: {EXAMPLE}\ndata: pose-synth:12:3\ncalibration_data: pose-synth:64:2\nboard: kv260\n"
            "sampler: random\nn_trials: 6\noutput: out\n"
            "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n"
        )
        run_study(load_study(study), progress=False)
        explore(["export", str(study), "--best", "fps_multi", "-o", str(folder / "warm")])  # imports, first-time caches
        hw, hw_vitis, trial, trial_no_model = [], [], [], []
        for i in range(args.repeat):
            hw.append(timed(["export", "--board", "kv260", "--cores", "2", "-o", str(folder / f"h{i}")]))
            hw_vitis.append(timed(["export", "--board", "kv260", "-o", str(folder / f"v{i}"), "--flow", "vitis"]))
            trial.append(timed(["export", str(study), "--best", "fps_multi", "-o", str(folder / f"t{i}")]))
            trial_no_model.append(timed(["export", str(study), "--best", "fps_multi", "--no-model", "-o", str(folder / f"n{i}")]))
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    for label, values in (
        ("hardware only, Vivado flow", hw),
        ("hardware only, Vitis flow", hw_vitis),
        ("study trial, --no-model", trial_no_model),
        ("study trial with model parts", trial),
    ):
        print(f"{label:<32} median {1000 * statistics.median(values):7.1f} ms  (min {1000 * min(values):.1f}, n={len(values)})")


if __name__ == "__main__":
    main()
