"""Latency and throughput model: DPU per layer, Arm CPU per operator, boundaries, frames per second.

The runtimes below are what the command line and the study file offer; they live here, apart from the
model, so that reading them does not import numpy or onnx.
"""

from __future__ import annotations

# What runs the compiled model on the board, and how many DPU subgraphs it can run.
RUNTIMES = {
    "vart": "VART (Vitis AI Runtime): any number of DPU subgraphs, the application chains them with the CPU parts",
    "pynq": "DPU-PYNQ's DpuOverlay: exactly one DPU subgraph (DPU-PYNQ issues #72, #102)",
}


def runtime_problem(runtime: str, dpu_subgraphs: int) -> str:
    """Why `runtime` cannot run a partition with this many DPU subgraphs ("" when it can)."""
    if runtime == "pynq" and dpu_subgraphs != 1:
        return (
            f"runtime pynq: DPU-PYNQ's DpuOverlay runs a model with exactly one DPU subgraph (DPU-PYNQ issues #72, "
            f"#102); this partition has {dpu_subgraphs}. Choose a split that leaves one, remove the CPU operators "
            "between the DPU parts, or use VART"
        )
    return ""
