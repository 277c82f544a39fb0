"""Trials per second of one study with 1, 2 and 4 workers, on PostgreSQL and on the journal file, with the
accuracy evaluated for every trial and with it cached, side by side in one run (issue #18).

Run: python bench/scale_out.py [--trials 16] [--repeat 2]
Needs PostgreSQL's server binaries (Debian's postgresql; the bench starts a private cluster on 127.0.0.1,
tests/pgserver.py) and the driver (pip install -e '.[postgres]').

Each run is `explore run study.yaml --workers W` on a fresh storage (a new database, or a new journal) with
the small study of tests/reliability (the example model, 8 generated images, random sampler):
- uncached: the default search space and `cache: false`: every trial compresses, calibrates and evaluates;
- cached: a search space of hardware only (no pruning, no split), so every trial shares one compressed
  model, and a cache filled beforehand: a trial is the explorer's own work plus the storage's.
The wall time includes each process's start-up (about 2 s: imports and the model), as a user sees it.
Runs are interleaved in a seeded order and repeated; the table gives medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (the PostgreSQL cluster) sits beside bench/

from tests.pgserver import PostgresServer, why_unavailable

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pose" / "mobilepose_dsnt.onnx"
HARDWARE_ONLY = (
    "search_space:\n  files: [dpu_zynqmp.yaml]\n  overrides:\n"
    "    dpu.arch: {choices: [B512, B1024, B1600, B2304, B3136, B4096]}\n"
    "    dpu.cores: {choices: [1, 2]}\n    dpu.ram_usage: {choices: [low, high]}\n    dpu.clock_mhz: {choices: [200, 250, 300]}\n"
)


def study_text(storage: str, cached: bool, cache: Path, n_trials: int) -> str:
    text = (
        f"model: {EXAMPLE}\ndata: pose-synth:8:3\ncalibration_data: pose-synth:4:2\nboard: kv260\n"
        f"sampler: random\nn_trials: {n_trials}\noutput: out\nconstraints: {{fit: false}}\nstorage: {storage}\n"
        "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n"
    )
    return text + (f"cache: {cache}\n" + HARDWARE_ONLY if cached else "cache: false\n")


def run(folder: Path, workers: int) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from explorer.cli import run; run()", "run", "study.yaml", "--no-progress", "--no-report",
         "--workers", str(workers)],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(folder / ".xdg")},
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"explore run failed in {folder}:\n{done.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    reason = why_unavailable()
    if reason:
        raise SystemExit(reason)
    server = PostgresServer()
    root = Path(tempfile.mkdtemp(prefix="scale-out-"))
    try:
        cache = root / "warm-cache"
        warm = root / "warm"
        warm.mkdir()
        (warm / "study.yaml").write_text(study_text(f"journal:{warm / 'j'}", True, cache, 1))
        run(warm, 1)  # fills the shared cache with the one compressed model of the hardware-only space
        cases = [(s, c, w) for s in ("journal", "postgresql") for c in (False, True) for w in (1, 2, 4)]
        times: dict[tuple[str, bool, int], list[float]] = {case: [] for case in cases}
        order = random.Random(20261203)
        n = 0
        for _ in range(args.repeat):
            order.shuffle(cases)
            for storage, cached, workers in cases:
                n += 1
                folder = root / f"run{n}"
                folder.mkdir()
                url = server.database() if storage == "postgresql" else f"journal:{folder / 'study.journal'}"
                (folder / "study.yaml").write_text(study_text(url, cached, cache, args.trials))
                times[(storage, cached, workers)].append(run(folder, workers))
                shutil.rmtree(folder, ignore_errors=True)
        print(
            f"{args.trials} trials per run, median of {args.repeat}; python {platform.python_version()} on "
            f"{platform.machine()}, {os.cpu_count()} CPUs"
        )
        print(f"{'storage':<12}{'accuracy':<10}{'workers':>8}{'wall s':>9}{'trials/s':>10}{'vs 1 worker':>13}")
        for storage in ("journal", "postgresql"):
            for cached in (False, True):
                one = statistics.median(times[(storage, cached, 1)])
                for workers in (1, 2, 4):
                    wall = statistics.median(times[(storage, cached, workers)])
                    print(
                        f"{storage:<12}{'cached' if cached else 'computed':<10}{workers:>8}{wall:>9.1f}"
                        f"{args.trials / wall:>10.2f}{one / wall:>12.2f}x"
                    )
        for cached in (False, True):
            for workers in (1, 2, 4):
                ratio = statistics.median(times[("postgresql", cached, workers)]) / statistics.median(
                    times[("journal", cached, workers)]
                )
                print(f"postgresql / journal wall time, {'cached' if cached else 'computed'}, {workers} workers: {ratio:.2f}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
