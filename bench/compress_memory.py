"""Peak memory of `explore compress`-style calibration on a ResNet-50 (target: < 2 GB peak RSS with 100
calibration samples, issue #13). Each case runs in a fresh child process, which reports the kernel's
maximum resident set size for itself (getrusage RUSAGE_SELF), model building and data included.

Run: python bench/compress_memory.py [--samples 100] [--methods minmax,mse]
Side by side with another checkout: PYTHONPATH=/path/to/other python bench/compress_memory.py ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
import onnx
try:
    from explorer.compress.context import CompressionContext, CompressOptions
except ImportError:  # checkouts from before the compress modules were renamed
    from explorer.compress.pipeline import CompressionContext, CompressOptions
from explorer.data.loaders import Dataset
from explorer.evaluators.builtin import load_evaluator
try:
    from reference.zoo import resnet50
except ImportError:  # checkouts from before the zoo moved out of the package
    from explorer.zoo import resnet50

folder, samples, method = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
path = folder / "resnet50.onnx"
if not path.exists():
    onnx.save(resnet50(), str(path))
rng = np.random.default_rng(0)
calibration = Dataset({"input": rng.random((samples, 3, 224, 224), dtype=np.float32)}, {}, "random", f"c{samples}")
data = Dataset({"input": rng.random((8, 3, 224, 224), dtype=np.float32)}, {"labels": np.zeros(8, dtype=np.int64)}, "random", "e8")
t0 = time.perf_counter()
ctx = CompressionContext(path, data, calibration, load_evaluator("classification"), folder / f"cache-{method}-{samples}")
options = CompressOptions(quantize="dpu", calibration=method)
(ctx.measure_accuracy if hasattr(ctx, "measure_accuracy") else ctx.evaluate)(options)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": peak}))
"""


def run_case(folder: Path, samples: int, method: str) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one compress in a child process."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(samples), method], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["peak_mb"]), float(result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", default="100", help="comma-separated calibration sample counts")
    parser.add_argument("--methods", default="minmax,mse")
    args = parser.parse_args()
    counts = [int(c) for c in args.samples.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        print("ResNet-50 224x224, quantize=dpu, 8 evaluation images; peak RSS of a fresh process per case")
        for method in args.methods.split(","):
            for count in counts:
                peak, seconds = run_case(Path(tmp), count, method)
                shown = f"peak RSS {peak:6.0f} MB, {seconds:6.1f} s"
                print(f"  {method:10s} {count:4d} calibration samples: {shown}  (target < 2048 MB at 100)")


if __name__ == "__main__":
    main()
