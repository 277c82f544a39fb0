"""The model's DDR traffic against PG338 Table 14's measured I/O bandwidth of one core (seed 004).

Table 14 gives, for one core running a network at full speed, the peak and the average ("averaged by layer")
I/O bandwidth through its AXI data ports, on a B1152 and on a B4096 (docs/hardware.md §3.1). The model's
counterpart of a layer's bandwidth is the bytes it moves over the layer's time. This script prints, per
network and architecture, the model's average over the DPU layers and its highest layer, against the table,
under the shipped parameters, and the `traffic_share` that would make the geometric mean of the three B4096
average ratios 1: the shipped share over that mean. The shipped share was set so (first under the fit before
it, where every counted byte moved: the ratios were 1.93, 1.74 and 1.27, share 0.62; the refit that followed
changed the layer times a little, and the share it implies now is printed). The B1152 rows are shown, not
used: PG338 builds a B1152 on Zynq-7000 and ZU2 parts at 200-370 MHz. The peaks are a check: neither the share
nor the ports' efficiency was fitted to them.

Table 14 names neither board nor clock: the ZCU102 at Table 13's 287 MHz is assumed, as for the architecture
ratios of reference/published_rows.yaml; the ratios scale with the clock (333 MHz would make them 16 % larger).

Run: python bench/io_bandwidth.py
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference/ sits beside bench/

from explorer.hardware.config import parse_dpu_config
from explorer.hardware.database import load_database
from explorer.perf.estimate import Estimator
from explorer.perf.params import LatencyParams, load_params
from reference.published import reference_graph

# PG338 Table 14 (seed 004; docs/hardware.md §3.1): MB/s of one core, (peak, average) per architecture
TABLE_14 = {
    "inception_v1": {"B1152": (1704, 890), "B4096": (4626, 2474)},
    "resnet50": {"B1152": (2052, 1017), "B4096": (5298, 3132)},
    "yolov3_voc": {"B1152": (2076, 986), "B4096": (6453, 3290)},
}
CLOCK_MHZ = 287.0


def drawn(model: str, arch: str, params: LatencyParams) -> tuple[float, float]:
    """(highest layer, average over layers) of the model's MB/s for `model` on one core of `arch`."""
    db = load_database()
    board = db.board("zcu102")
    config = parse_dpu_config(
        {"arch": arch, "cores": 1, "clock_mhz": CLOCK_MHZ, "ip_version": "3.4", "elew_mult": False, "save_argmax": False},
        board,
        db=db,
    )
    layers = [
        t
        for t in Estimator(reference_graph(model), board, params, db).estimate(config).layers
        if t.device == "DPU" and t.time_ms > 0
    ]
    rates = [t.ddr_bytes / t.time_ms / 1e3 for t in layers]  # bytes per ms / 1e3 = MB/s
    return max(rates), statistics.fmean(rates)


def table(params: LatencyParams) -> list[float]:
    """Print the comparison under `params`; return the B4096 average ratios (model / table)."""
    head = ("network", "arch", "peak model", "table", "ratio", "avg model", "table", "ratio")
    print("  {:14s} {:6s} {:>10s} {:>6s} {:>6s} {:>10s} {:>6s} {:>6s}".format(*head))
    ratios = []
    for model, archs in TABLE_14.items():
        for arch, (peak, average) in archs.items():
            top, mean = drawn(model, arch, params)
            cells = f"{top:10.0f} {peak:6d} {top / peak:6.2f} {mean:10.0f} {average:6d} {mean / average:6.2f}"
            print(f"  {model:14s} {arch:6s} {cells}")
            if arch == "B4096":
                ratios.append(mean / average)
    return ratios


def main() -> None:
    shipped = load_params()
    share, ports = shipped.traffic_share, shipped.port_efficiency
    print(f"Shipped parameters (traffic_share {share}, port_efficiency {ports:.4g}), {CLOCK_MHZ:.0f} MHz:")
    ratios = table(shipped)
    geomean = math.exp(statistics.fmean(math.log(r) for r in ratios))
    print(
        f"  B4096 average ratios {', '.join(f'{r:.2f}' for r in ratios)}: geometric mean {geomean:.3f} -> "
        f"traffic_share {shipped.traffic_share / geomean:.3f} would make it 1"
    )


if __name__ == "__main__":
    main()
