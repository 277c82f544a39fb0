#!/usr/bin/env python3
"""Quantize model/dpu_part.onnx to int8 with power-of-two scales for the DPU, as dpu-explorer's study did.

Written by `explore export` into deploy/; run by compile.sh inside the Vitis AI 3.5 docker, where
vai_q_onnx is installed. Settings are the DPU constraints of docs/hardware.md §6.4: symmetric int8 activations
and weights, per-tensor, power-of-two scales (PowerOfTwoMethod.MinMSE), calibrated on model/calibration.npz.
Output: build/dpu_part_quantized.onnx.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


class NpzReader:
    """Calibration reader: one feed dict per sample of model/calibration.npz."""

    def __init__(self, path: Path, names: list[str]) -> None:
        with np.load(path) as data:
            self.samples = [{n: data[n][i : i + 1].astype(np.float32) for n in names} for i in range(len(data[names[0]]))]
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.samples):
            return None
        self.index += 1
        return self.samples[self.index - 1]


def main() -> None:
    try:
        import vai_q_onnx  # type: ignore[import-not-found]
        from onnxruntime.quantization import QuantType
    except ImportError:
        print("quantize_dpu_part.py: vai_q_onnx is not importable; run inside the Vitis AI 3.5 docker", file=sys.stderr)
        sys.exit(2)
    model: dict[str, Any] = json.loads((HERE / "deploy.json").read_text())["model"]
    if not model.get("dpu_part"):
        print("quantize_dpu_part.py: this design point runs entirely on the Arm CPU (split 0): no DPU part", file=sys.stderr)
        sys.exit(0)
    out = HERE / "build" / "dpu_part_quantized.onnx"
    out.parent.mkdir(exist_ok=True)
    vai_q_onnx.quantize_static(
        str(HERE / model["dpu_part"]),
        str(out),
        NpzReader(HERE / model["calibration"], list(model["inputs"])),
        quant_format=vai_q_onnx.VitisQuantFormat.FixNeuron,
        calibrate_method=vai_q_onnx.PowerOfTwoMethod.MinMSE,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=False,
        reduce_range=False,
        extra_options={
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "AddQDQPairToWeight": True,
            "CalibTensorRangeSymmetric": True,
            "CalibMovingAverage": False,
        },
    )
    print(f"quantize_dpu_part.py: wrote {out}")


if __name__ == "__main__":
    main()
