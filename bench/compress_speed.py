"""Speed of one prune + quantize + evaluate of the bundled example (target <= 10 s on 2 cores), and of a
cache hit (target <= 50 ms). Medians of --repeat runs in one process, each run with a fresh cache dir.

Run: python bench/compress_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from explorer.compress.context import CompressionContext, CompressOptions
from explorer.data.loaders import load_data
from explorer.evaluators.builtin import load_evaluator

MODEL = Path(__file__).parents[1] / "examples" / "pose" / "mobilepose_dsnt.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = load_data("pose-synth:300:3", ["input"])
    calibration = load_data("pose-synth:100:2", ["input"])
    options = CompressOptions(prune={"g0": 0.9, "g1": 0.9, "g2": 0.9, "g3": 0.9}, quantize="dpu")
    full, hit_disk, hit_memory, setup = [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            ctx = CompressionContext(MODEL, data, calibration, load_evaluator("pose"), Path(cache))
            t1 = time.perf_counter()
            ctx.measure_accuracy(options)  # APoZ, prune, quantize (calibrate), evaluate 300 images
            t2 = time.perf_counter()
            ctx.measure_accuracy(options)
            t3 = time.perf_counter()
            fresh = CompressionContext(MODEL, data, calibration, load_evaluator("pose"), Path(cache))
            fresh.pruned(options)  # what a resumed study has built before it asks the cache
            t4 = time.perf_counter()
            assert fresh.measure_accuracy(options).cached
            t5 = time.perf_counter()
            setup.append(t1 - t0)
            full.append(t2 - t1)
            hit_memory.append(t3 - t2)
            hit_disk.append(t5 - t4)
    print(f"pose example, 300 evaluation images, 100 calibration images; medians of {args.repeat}")
    print(f"  context (load, normalise, batch-1 and batch-32 graphs): {statistics.median(setup):7.3f} s")
    print(f"  prune + quantize + evaluate, nothing cached:           {statistics.median(full):7.3f} s  (target <= 10 s)")
    print(
        f"  cache hit from disk (new process state):               {statistics.median(hit_disk) * 1e3:7.2f} ms (target <= 50 ms)"
    )
    print(f"  cache hit in memory (same context):                    {statistics.median(hit_memory) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
