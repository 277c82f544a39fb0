"""Enumerate every legal DPU configuration of a board, compute resources and fit; report configs/s.

Run: python bench/hw_space.py [--board zcu102] [--repeat 5]
Reports the median of --repeat runs per IP version (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from explorer.hardware.database import load_database
from explorer.hardware.legal_space import enumerate_space, ip_versions_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", default="zcu102")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    db = load_database()
    board = db.board(args.board)
    print(
        f"board {board.name} ({board.device.name}); python {platform.python_version()} on {platform.machine()}; "
        f"median of {args.repeat} runs"
    )
    print(f"{'IP':<5}{'legal':>9}{'fit':>9}{'median s':>10}{'configs/s':>12}")
    total_legal, total_time = 0, 0.0
    for version in ip_versions_for(board, db):
        times, legal, fits = [], 0, 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            legal = fits = 0
            for point in enumerate_space(board, version, db=db):
                legal += 1
                fits += point.fits
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        total_legal += legal
        total_time += median
        print(f"{version:<5}{legal:>9}{fits:>9}{median:>10.3f}{legal / median:>12,.0f}")
    print(f"{'all':<5}{total_legal:>9}{'':>9}{total_time:>10.3f}{total_legal / total_time:>12,.0f}")


if __name__ == "__main__":
    main()
