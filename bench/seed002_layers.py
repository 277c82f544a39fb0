"""Seed 002's Figure 13, per layer: its stand-in detector (reference/zoo.py) unpruned against pruned as the seed
prunes (channel counts in multiples of 4, early and late layers), on a B4096 at 325 MHz, with `explore compare`.

The seed measured that pruning the early layers bought no time. This prints the model's per-layer verdicts.

Run: python bench/seed002_layers.py [--size 1024] [--top 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference/ sits beside bench/

import numpy as np
import onnx

from explorer.cli import main as explore
from explorer.compress.prune import apply_pruning
from reference import zoo

# the first convolution (32 filters) and an early expansion (96) lose 4 and 8; a late one (512) loses 64
KEPT = {"conv_2": 28, "conv_29": 88, "conv_305": 448}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    model = zoo.mobilenet_v2_ssd_seed002(size=args.size)
    with tempfile.TemporaryDirectory() as folder:
        a, b = Path(folder) / "unpruned.onnx", Path(folder) / "pruned.onnx"
        onnx.save(model, a)
        onnx.save(apply_pruning(model, {name: np.arange(n) for name, n in KEPT.items()}), b)
        explore(
            [
                "compare",
                str(a),
                "--model-b",
                str(b),
                "--board",
                "zcu102",
                "--arch",
                "B4096",
                "--clock-mhz",
                "325",
                "--top",
                str(args.top),
            ]
        )


if __name__ == "__main__":
    main()
