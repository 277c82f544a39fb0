"""How many accuracy evaluations the bundled example study makes: one per distinct compressed model the
cache key tells apart (issue #16, "cache by effect"). Runs the example (examples/pose/study_ultra96.yaml)
in a temporary folder and counts the accuracy cache's entries.

Run: python bench/accuracy_evaluations.py [--n-trials 100]
Side by side with another checkout: PYTHONPATH=/path/to/other python bench/accuracy_evaluations.py
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pose" / "study_ultra96.yaml"


def run_example(n_trials: int) -> tuple[float, int]:
    """(wall seconds, accuracy evaluations) of `explore run` on the example, in a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        text = EXAMPLE.read_text()
        text = re.sub(r"(?m)^model: .*$", f"model: {EXAMPLE.with_name('mobilepose_dsnt.onnx')}", text)
        text = re.sub(r"(?m)^output: .*$", "output: out", text)
        study = Path(tmp) / "study.yaml"
        study.write_text(text)
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "xdg")}
        argv = [sys.executable, "-m", "explorer", "run", str(study), "--n-trials", str(n_trials), "--no-progress", "--no-report"]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        return seconds, len(list((Path(tmp) / "out" / "cache" / "accuracy").glob("*.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-trials", type=int, default=100)
    args = parser.parse_args()
    seconds, evaluations = run_example(args.n_trials)
    print(f"example study, {args.n_trials} trials (seed 0): {evaluations} accuracy evaluations, {seconds:.0f} s wall")


if __name__ == "__main__":
    main()
