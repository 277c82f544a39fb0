#!/usr/bin/env python3
"""Run one dpu-explorer design point on the board and print measured FPS and latency as JSON.

Written by `explore export` into deploy/; runs on the board (PetaLinux or PYNQ with the Vitis AI runtime).
The DPU part runs with VART (`vart`/`xir`, docs/hardware.md §6.2) or, with --overlay, through `pynq_dpu`
(§6.3); the CPU part after the cut runs with onnxruntime. `vart`/`xir` are imported only here on the
board: nothing in this script fakes them, and without them it stops with a message. A design point at split 0
has no DPU part: the whole model runs with onnxruntime on whatever host runs this script, and the result
names that host and its CPU.

    python3 run_on_board.py [--frames 200] [--threads 2] [--inputs data.npz] [--overlay dpu.bit] [--out result.json]

Output (also written to --out): {"schema": "dpu-explorer/board-run/1", "source": "board", "fps_single", "fps_multi",
"latency_ms": {"median", "p90", "mean"}, "dpu_ms", "cpu_ms", "frames", "threads", "board", "fingerprint", "origin", ...}.

Facts marked UNVERIFIED in docs/hardware.md and used here: the buffer dtype VART accepts (§7.9: int8 is used,
scaled by 2^fix_point) and the mapping of the compiled model's output tensors to the cut tensors (by name,
then by order).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SCHEMA = "dpu-explorer/board-run/1"


def fail(message: str, code: int = 2) -> None:
    print(f"run_on_board.py: {message}", file=sys.stderr)
    sys.exit(code)


def load_deploy() -> dict[str, Any]:
    path = HERE / "deploy.json"
    if not path.is_file():
        fail(f"{path} is missing; run this script from the exported deploy/ folder")
    deploy: dict[str, Any] = json.loads(path.read_text())
    if not deploy.get("model"):
        fail("this export has no model (it was exported with --dpu FILE); export a study trial, or pass --xmodel")
    return deploy


class DpuPart:
    """The compiled DPU subgraph behind one VART runner (one per thread)."""

    def __init__(self, xmodel: Path, overlay: str | None) -> None:
        if overlay:
            try:
                from pynq_dpu import DpuOverlay  # type: ignore[import-not-found]
            except ImportError:
                fail("pynq_dpu is not installed (pip3 install pynq-dpu --no-build-isolation on a PYNQ image)")
            ov = DpuOverlay(overlay)
            ov.load_model(str(xmodel))
            self.runners = [ov.runner]
            return
        try:
            import vart  # type: ignore[import-not-found]
            import xir  # type: ignore[import-not-found]
        except ImportError:
            fail("vart/xir are not importable: run this on the board with the Vitis AI runtime (or use --overlay on PYNQ)")
        graph = xir.Graph.deserialize(str(xmodel))
        subgraphs = [
            s
            for s in graph.get_root_subgraph().toposort_child_subgraph()
            if s.has_attr("device") and s.get_attr("device").upper() == "DPU"
        ]
        if len(subgraphs) != 1:
            fail(
                f"{xmodel} has {len(subgraphs)} DPU subgraphs; this script runs exactly one. Nodes before the cut "
                "that the DPU cannot run split the DPU part: choose a split before them, or run the model with "
                "the Vitis AI Library graph runner"
            )
        self.subgraph = subgraphs[0]
        self.vart = vart
        self.runners = [vart.Runner.create_runner(self.subgraph, "run")]

    def runner(self, index: int) -> Any:
        while len(self.runners) <= index:
            self.runners.append(self.vart.Runner.create_runner(self.subgraph, "run"))
        return self.runners[index]


def run_dpu(runner: Any, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """Run one frame: float NCHW inputs -> int8 NHWC buffers -> float NCHW outputs (scaled by 2^fix_point)."""
    inputs, outputs = runner.get_input_tensors(), runner.get_output_tensors()
    in_buffers = []
    for tensor, value in zip(inputs, feeds, strict=True):
        scale = 2.0 ** tensor.get_attr("fix_point")
        nhwc = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
        in_buffers.append(np.clip(np.round(nhwc * scale), -128, 127).astype(np.int8).reshape(tuple(tensor.dims)))
    out_buffers = [np.empty(tuple(t.dims), dtype=np.int8, order="C") for t in outputs]
    job = runner.execute_async(in_buffers, out_buffers)
    runner.wait(job)
    results = []
    for tensor, value in zip(outputs, out_buffers, strict=True):
        real = value.astype(np.float32) * (2.0 ** -tensor.get_attr("fix_point"))
        results.append(real.transpose(0, 3, 1, 2) if real.ndim == 4 else real)
    return results


def order_outputs(runner: Any, cut: list[str], produced: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Match the compiled model's outputs to the cut tensors: by name where the compiler kept it, else by order."""
    names = [t.name for t in runner.get_output_tensors()]
    found: dict[str, np.ndarray] = {}
    rest = list(zip(names, produced, strict=True))
    for tensor in cut:
        for i, (name, value) in enumerate(rest):
            if name == tensor or name.startswith(tensor) or tensor in name:
                found[tensor] = value
                rest.pop(i)
                break
    for tensor in [t for t in cut if t not in found]:
        if rest:
            found[tensor] = rest.pop(0)[1]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xmodel", help="compiled model (default: the one deploy.json names)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="threads for the multi-threaded FPS run")
    parser.add_argument("--inputs", help=".npz with one array per model input (default: seeded random data)")
    parser.add_argument("--overlay", help="PYNQ: the .bit to load with pynq_dpu (with its .hwh and .xclbin)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    deploy = load_deploy()
    model = deploy["model"]
    dpu = None  # split 0: the whole model runs on the CPU with onnxruntime, no DPU and no xmodel
    if model.get("dpu_part") or args.xmodel:
        xmodel = Path(args.xmodel) if args.xmodel else HERE / model["xmodel"]
        if not xmodel.is_file():
            fail(f"{xmodel} not found; compile first (deploy/compile.sh)")
        dpu = DpuPart(xmodel, args.overlay)

    cpu_session = None
    cpu_file = model["cpu_part_int8"] if model["cpu_precision"] == "int8" and model["cpu_part_int8"] else model["cpu_part"]
    if cpu_file:
        try:
            import onnxruntime as ort
        except ImportError:
            fail("onnxruntime is not installed (pip3 install onnxruntime); the CPU part after the cut needs it")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        cpu_session = ort.InferenceSession(str(HERE / cpu_file), options, providers=["CPUExecutionProvider"])

    names = list(model["inputs"])
    if args.inputs:
        with np.load(args.inputs) as data:
            frames_in = [[data[n][i : i + 1].astype(np.float32) for n in names] for i in range(len(data[names[0]]))]
    else:
        rng = np.random.default_rng(0)
        frames_in = [[rng.standard_normal(model["inputs"][n]).astype(np.float32) for n in names] for _ in range(8)]

    def frame(runner: Any, feeds: list[np.ndarray]) -> tuple[float, float]:
        t0 = time.perf_counter()
        produced = run_dpu(runner, feeds) if runner is not None else []
        t1 = time.perf_counter() if runner is not None else t0  # no DPU part: no DPU time
        if cpu_session is not None:
            tensors = dict(zip(names, feeds, strict=True))
            if runner is not None:
                tensors.update(order_outputs(runner, [t for t in model["cut_tensors"] if t not in names], produced))
            cpu_inputs = {i.name: tensors[i.name] for i in cpu_session.get_inputs()}
            cpu_session.run(None, cpu_inputs)
        return (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3

    runner = dpu.runner(0) if dpu is not None else None
    for i in range(args.warmup):
        frame(runner, frames_in[i % len(frames_in)])
    dpu_ms, cpu_ms, total_ms = [], [], []
    start = time.perf_counter()
    for i in range(args.frames):
        d, c = frame(runner, frames_in[i % len(frames_in)])
        dpu_ms.append(d)
        cpu_ms.append(c)
        total_ms.append(d + c)
    single_s = time.perf_counter() - start

    threads = max(1, args.threads)
    runners = [dpu.runner(t) for t in range(threads)] if dpu is not None and not args.overlay else [runner] * threads
    per_thread = max(1, args.frames // threads)

    def work(t: int) -> None:
        for i in range(per_thread):
            frame(runners[t], frames_in[i % len(frames_in)])

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    multi_s = time.perf_counter() - start

    ordered = sorted(total_ms)
    result = {
        "schema": SCHEMA,
        "source": "board",
        "board": deploy["board"],
        "fingerprint": deploy["fingerprint"],
        "origin": deploy.get("origin", {}),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runtime": "onnxruntime (CPU only)" if dpu is None else "pynq_dpu" if args.overlay else "vart",
        "frames": args.frames,
        "threads": threads,
        "fps_single": args.frames / single_s,
        "fps_multi": per_thread * threads / multi_s,
        "latency_ms": {
            "median": statistics.median(total_ms),
            "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "mean": statistics.fmean(total_ms),
        },
        "dpu_ms": statistics.median(dpu_ms),
        "cpu_ms": statistics.median(cpu_ms),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
