"""The bundled pose example: the seeds' "Key Results" table and the pruning trade-off curve.

Run: python bench/pose_example.py [--count 300]
Accuracy is measured (onnxruntime on the procedural evaluation set, seed 3); MACs are counted.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
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
        reference = base.metrics["euclidean_error"]

        start = time.perf_counter()
        ctx.ranks()
        ranking = time.perf_counter() - start

        def row(label: str, prune: dict[str, float]) -> None:
            """One pruning setting: APoZ alone (its channels, no recovery), APoZ's channels reconstructed (the
            default before the selection), and the default: the channels the refit needs least, reconstructed."""
            plain = ctx.measure_accuracy(CompressOptions(prune=prune, quantize="dpu", recovery="none", selection="apoz"))
            by_apoz = ctx.measure_accuracy(CompressOptions(prune=prune, quantize="dpu", selection="apoz"))
            start = time.perf_counter()
            ctx.pruned(CompressOptions(prune=prune, quantize="dpu"))
            seconds = time.perf_counter() - start
            rec = ctx.measure_accuracy(CompressOptions(prune=prune, quantize="dpu"))
            cells = [f"{label} | {rec.macs_after / rec.macs_before:.1%} | {rec.params_after:,}"]
            for r in (plain, by_apoz, rec):
                cells.append(f"{r.metrics['euclidean_error'] / reference - 1:+.1%} | {r.metrics['pck']:.3f}")
            print(f"| {' | '.join(cells)} | {seconds:.2f} |")

        header = (
            "| MACs kept | params | error, APoZ alone | PCK | error, APoZ + reconstruction | PCK "
            "| error, default (selection + reconstruction) | PCK | reconstruction s |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )
        print("\nPruning trade-off (one threshold for all four layer groups, multiple 4, int8 DPU part); errors")
        print("relative to the unpruned int8 model; selection and reconstruction fitted on the calibration images only;")
        print(f"ranking the channels for the selection: {ranking:.2f} s, once per model and calibration data:")
        print("\n| APoZ threshold " + header.replace("\n", "\n|---:"))
        for t in (0.8, 0.75, 0.7, 0.65, 0.6, 0.58, 0.55, 0.5):
            row(f"{t:.2f}", {f"g{g}": t for g in range(4)})
        print("\nIterative pruning (`rounds`, seed 002's iterations without its fine-tuning): the same final thresholds")
        print("reached in 3 rounds, the APoZ measured again on the recovered model after each:\n")
        print("| APoZ threshold | rounds | MACs kept | error, reconstructed | PCK |\n|---:|---:|---:|---:|---:|")
        for t in (0.6, 0.55):
            for rounds in (1, 3):
                r = ctx.measure_accuracy(CompressOptions(prune={f"g{g}": t for g in range(4)}, quantize="dpu", rounds=rounds))
                error = r.metrics["euclidean_error"] / reference - 1
                print(f"| {t:.2f} | {rounds} | {r.macs_after / r.macs_before:.1%} | {error:+.1%} | {r.metrics['pck']:.3f} |")
        print("\nOne layer group at a time (the others unpruned):")
        print("\n| group, threshold " + header.replace("\n", "\n|---"))
        for g in range(4):
            for t in (0.7, 0.6, 0.5):
                row(f"g{g} {t:.2f}", {f"g{g}": t})


if __name__ == "__main__":
    main()
