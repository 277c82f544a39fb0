"""What `explore estimate` says of the real-export fixtures (tests/data/models, issue #13): DPU and CPU nodes,
DPU subgraphs and the FPS estimate on a ZCU104 with the default DPU (IP 4.1 B4096 at 300 MHz), for each
exporter, as exported and with --hard-activations.

It runs the command line (`python -m explorer estimate ... --json`), so the same script measures any
checkout: PYTHONPATH=/path/to/other/checkout python bench/fixture_verdicts.py

Run: python bench/fixture_verdicts.py [--board zcu104]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "models"


def verdict(model: Path, board: str, hard: bool) -> str:
    argv = [sys.executable, "-m", "explorer", "estimate", str(model), "--board", board, "--json"]
    done = subprocess.run([*argv, "--hard-activations"] if hard else argv, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return f"refused: {lines[-1][:90] if lines else done.returncode}"
    result = json.loads(done.stdout)
    subgraphs = result["subgraphs"]
    dpu_nodes = sum(len(s["nodes"]) for s in subgraphs if s["device"] == "DPU")
    cpu_nodes = sum(len(s["nodes"]) for s in subgraphs if s["device"] == "CPU")
    dpu_parts = sum(1 for s in subgraphs if s["device"] == "DPU")
    return f"{dpu_nodes:4d} {cpu_nodes:4d} {dpu_parts:4d} {len(subgraphs):4d} {result['fps_single']:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", default="zcu104")
    args = parser.parse_args()
    print(f"board {args.board}, default DPU; columns: DPU nodes, CPU nodes, DPU subgraphs, all subgraphs, fps_single")
    for model in sorted(MODELS.glob("*.onnx")):
        for hard in (False, True):
            print(f"  {model.stem:28s} {'hard' if hard else 'as exported':12s} {verdict(model, args.board, hard)}")


if __name__ == "__main__":
    main()
