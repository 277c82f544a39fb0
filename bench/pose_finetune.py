"""The pose example's pruning trade-off with the example's fine-tuning hook (issue #17): per APoZ threshold (one
for all four layer groups), the MACs kept and the error relative to the unpruned int8 model, with the default
recovery (least-squares reconstruction) and then fine-tuned by examples/pose/finetune.py, and the time the
fine-tuning adds per compressed model.

Run: python bench/pose_finetune.py [--thresholds 0.6 0.58] [--steps 3000] [--count 300]
Needs torch (the `train` extra). Accuracy is measured (onnxruntime, 300 evaluation images of seed 3; int8
calibrated on 100 images of seed 2); the fine-tuning trains on generated images of the training seed only.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import tempfile
import time
from pathlib import Path

from explorer.compress.context import CompressionContext, CompressOptions
from explorer.compress.finetune import FinetuneHook
from explorer.data.loaders import load_data
from explorer.evaluators.builtin import load_evaluator

EXAMPLE = Path(__file__).parents[1] / "examples" / "pose"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.65, 0.6, 0.58])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    if importlib.util.find_spec("torch") is None:
        raise SystemExit("this benchmark needs torch: pip install -e '.[train]'")
    data = load_data(f"pose-synth:{args.count}:3", ["input"])
    calibration = load_data("pose-synth:100:2", ["input"])
    hook = FinetuneHook(f"{EXAMPLE / 'finetune.py'}:finetune", args.steps)
    with tempfile.TemporaryDirectory() as cache:
        ctx = CompressionContext(EXAMPLE / "mobilepose_dsnt.onnx", data, calibration, load_evaluator("pose"), Path(cache))
        reference = ctx.measure_accuracy(CompressOptions(quantize="dpu")).metrics["euclidean_error"]
        print(f"MobilePose-DSNT example, {args.count} evaluation images, {args.steps} fine-tuning steps")
        print(f"python {platform.python_version()}")
        print(f"unpruned int8 (Y+N) Euclidean error {reference:.4f}\n")
        print("| APoZ threshold | MACs kept | error, reconstructed | PCK | error, fine-tuned | PCK | fine-tuning s |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for t in args.thresholds:
            prune = {f"g{g}": t for g in range(4)}
            rec = ctx.measure_accuracy(CompressOptions(prune=prune, quantize="dpu"))
            start = time.perf_counter()
            tuned = ctx.measure_accuracy(CompressOptions(prune=prune, quantize="dpu", finetune=hook))
            seconds = time.perf_counter() - start
            e_rec, e_tuned = (r.metrics["euclidean_error"] / reference - 1 for r in (rec, tuned))
            kept = rec.macs_after / rec.macs_before
            print(
                f"| {t:.2f} | {kept:.1%} | {e_rec:+.1%} | {rec.metrics['pck']:.3f} | {e_tuned:+.1%} | "
                f"{tuned.metrics['pck']:.3f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
