"""The bundled pose example: the seeds' "Key Results" table and the pruning trade-off curve.

Run: python bench/pose_example.py [--count 300]
Accuracy is measured (onnxruntime on the procedural evaluation set, seed 3); MACs are counted.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from explorer.compress.context import CompressionContext, CompressOptions
from explorer.data.loaders import load_data
from explorer.evaluators.builtin import load_evaluator

MODEL = Path(__file__).parents[1] / "examples" / "pose" / "mobilepose_dsnt.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    data = load_data(f"pose-synth:{args.count}:3", ["input"])
    calibration = load_data("pose-synth:100:2", ["input"])
    with tempfile.TemporaryDirectory() as cache:
        ctx = CompressionContext(MODEL, data, calibration, load_evaluator("pose"), Path(cache))
        print(f"MobilePose-DSNT example, {args.count} evaluation images; python {platform.python_version()}")
        print("\n| Hardware | Static INT8 quantization | Euclidean error | JSD | PCK@0.2 | SQNR dB |")
        print("|---|---|---:|---:|---:|---:|")
        for label, quant in (("CPU (ONNX Runtime)", "none"), ("DPU + CPU", "dpu"), ("DPU + CPU", "all")):
            r = ctx.measure_accuracy(CompressOptions(quantize=quant))
            m = r.metrics
            yn = {"none": "N", "dpu": "Y+N", "all": "Y+Y"}[quant]
            print(
                f"| {label} | {yn} | {m['euclidean_error']:.4f} | {m['jsd']:.4f} | {m['pck']:.3f} | {r.fidelity['sqnr_db']:.1f} |"
            )
        base = ctx.measure_accuracy(CompressOptions(quantize="dpu"))
        print("\nPruning trade-off (one threshold for all four layer groups, multiple 4, int8 DPU part):")
        print("\n| APoZ threshold | MACs | MACs kept | params | Euclidean error | relative to unpruned int8 | PCK@0.2 |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for t in (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6):
            r = ctx.measure_accuracy(CompressOptions(prune={f"g{g}": t for g in range(4)}, quantize="dpu"))
            e = r.metrics["euclidean_error"]
            print(
                f"| {t:.2f} | {r.macs_after:,} | {r.macs_after / r.macs_before:.1%} | {r.params_after:,} | {e:.4f} | "
                f"{e / base.metrics['euclidean_error'] - 1:+.1%} | {r.metrics['pck']:.3f} |"
            )
        print("\nOne layer group at a time (the others unpruned):")
        print("\n| group | threshold | MACs kept | Euclidean error | relative to unpruned int8 | PCK@0.2 |")
        print("|---|---:|---:|---:|---:|---:|")
        for g in range(4):
            for t in (0.7, 0.6, 0.5):
                r = ctx.measure_accuracy(CompressOptions(prune={f"g{g}": t}, quantize="dpu"))
                e = r.metrics["euclidean_error"]
                print(
                    f"| g{g} | {t:.2f} | {r.macs_after / r.macs_before:.1%} | {e:.4f} | "
                    f"{e / base.metrics['euclidean_error'] - 1:+.1%} | {r.metrics['pck']:.3f} |"
                )


if __name__ == "__main__":
    main()
