"""How much DPU time the reload model adds: each reference network on B512, B1152 and B4096, timed as the
model times it and again with unlimited on-chip banks (no layer reloads), per issue #14's question whether
the reload model is too pessimistic on small DPUs.

Run: python bench/reload_share.py [--board zcu102] [--clock 325]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference/ sits beside bench/

from explorer.dpu.support import DPU, Placement
from explorer.graph.prepare import graph_from_model
from explorer.hardware.config import DpuConfig, resolve
from explorer.hardware.database import load_database
from explorer.perf.dpu import dpu_layer_time, geometry
from reference import zoo

NETWORKS = {
    "ResNet-50": zoo.resnet50,
    "MobileNetV2": zoo.mobilenet_v2,
    "Inception-v1": zoo.inception_v1,
    "YOLOv3-VOC 416": zoo.yolov3,
    "seed 002 detector 1024": zoo.mobilenet_v2_ssd_seed002,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", default="zcu102")
    parser.add_argument("--clock", type=int, default=325)
    args = parser.parse_args()
    board = load_database().board(args.board)
    print(f"{'network':<24}{'arch':<7}{'DPU ms':>9}{'no reloads':>12}{'added':>8}{'layers reloading':>18}{'of which slower':>17}")
    for name, build in NETWORKS.items():
        graph = graph_from_model(build())
        for arch in ("B512", "B1152", "B4096"):
            geo = geometry(resolve(DpuConfig(arch=arch, clock_mhz=args.clock)), board)
            unlimited = replace(geo, img_capacity_bytes=2**62, wgt_capacity_bytes=2**62)
            total = free = 0.0
            reloading = slower = 0
            for layer in graph.layers:
                timed = dpu_layer_time(layer, Placement(DPU), geo)
                ideal = dpu_layer_time(layer, Placement(DPU), unlimited)
                total, free = total + timed.time_ms, free + ideal.time_ms
                reloading += timed.ddr_bytes != ideal.ddr_bytes
                slower += timed.time_ms > ideal.time_ms * (1 + 1e-9)
            print(f"{name:<24}{arch:<7}{total:>9.2f}{free:>12.2f}{total / free - 1:>+8.1%}{reloading:>18}{slower:>17}")


if __name__ == "__main__":
    main()
