"""Start-up time of the command line: `explore --version` and `explore hw boards`, side by side with a bare
`python -c "import numpy, yaml"` (the floor: the interpreter and the two libraries every command needs).
Target (issue #12): both commands well under half a second.

Run: python bench/startup.py [--repeat 15]
Each round runs the three commands once, interleaved, so that machine noise hits them alike; medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import numpy, yaml'": [sys.executable, "-c", "import numpy, yaml"],
    "explore --version": [sys.executable, "-c", "from explorer.cli import run; run()", "--version"],
    "explore hw boards": [sys.executable, "-c", "from explorer.cli import run; run()", "hw", "boards"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    floor = statistics.median(times["python -c 'import numpy, yaml'"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'command':<34} {'median s':>9} {'vs floor':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<34} {median:9.3f} {median / floor:9.2f}")


if __name__ == "__main__":
    main()
