"""Speed of `Estimator`: a full estimate of ResNet-50 after loading, and re-estimates for other DPU
configurations and splits (what a study does per trial). Targets (issue #3): < 50 ms and < 5 ms.

Run: python bench/estimate_speed.py [--repeat 31]
Medians over --repeat runs, all in this one process (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference/ (networks, published rows) sits beside bench/

from explorer.graph.prepare import graph_from_model
from explorer.hardware.config import DpuConfig
from explorer.hardware.database import load_database
from explorer.perf.estimate import Estimator
from reference.zoo import resnet50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()
    board = load_database().board("kv260")
    start = time.perf_counter()
    graph = graph_from_model(resnet50())
    load_s = time.perf_counter() - start
    configs = [DpuConfig(arch=a, cores=c) for a in ("B4096", "B2304", "B1024", "B512") for c in (1, 2)]
    splits = [None, 20, 60, 100]
    full, reconfig, resplit = [], [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        est = Estimator(graph, board)
        est.estimate(configs[0])
        t1 = time.perf_counter()
        est.estimate(configs[1 + i % (len(configs) - 1)])
        t2 = time.perf_counter()
        est.estimate(configs[0], split=splits[1 + i % (len(splits) - 1)])
        t3 = time.perf_counter()
        full.append(t1 - t0)
        reconfig.append(t2 - t1)
        resplit.append(t3 - t2)
    warm = []
    est = Estimator(graph, board)
    for config in configs:
        for split in splits:
            est.estimate(config, split)
    for i in range(args.repeat):
        t0 = time.perf_counter()
        est.estimate(configs[i % len(configs)], splits[i % len(splits)])
        warm.append(time.perf_counter() - t0)
    print(
        f"ResNet-50 ({len(graph.layers)} layers), KV260; python {platform.python_version()} on {platform.machine()}; "
        f"medians of {args.repeat}"
    )
    print(f"  load + normalise + analyse (once):             {load_s * 1e3:8.1f} ms")
    print(f"  full estimate, new Estimator:                  {statistics.median(full) * 1e3:8.2f} ms  (target < 50)")
    print(f"  re-estimate, another DPU configuration:        {statistics.median(reconfig) * 1e3:8.2f} ms  (target < 5)")
    print(f"  re-estimate, another split:                    {statistics.median(resplit) * 1e3:8.2f} ms  (target < 5)")
    print(f"  re-estimate, configuration and split seen before: {statistics.median(warm) * 1e3:5.2f} ms")


if __name__ == "__main__":
    main()
