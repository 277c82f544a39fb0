"""Arm CPU time per operator (Cortex-A53 x4 on Zynq UltraScale+, Cortex-A9 x2 on Zynq-7000).

time = MACs / (conv GMAC/s per GHz x clock x thread speed-up)    (convolution, FC; depthwise at a fraction)
     + bytes / (stream GB/s x clock / 1 GHz)                      (every operator's inputs and outputs)
     + a fixed cost per operator.
Thread speed-up = 1 + (threads - 1) x parallel efficiency, threads capped at the core count.
"""

from __future__ import annotations

from explorer.graph.layers import Layer
from explorer.hardware.database import Cpu
from explorer.perf.params import LatencyParams

_MAC_KINDS = {"conv", "gconv", "deconv", "fc", "matmul", "conv_dynamic"}
_FUSED_ON_CPU = {"relu", "relu6", "leakyrelu", "clip"}  # onnxruntime fuses these into the producing Conv


def thread_speedup(threads: int, cpu: Cpu, efficiency: float) -> float:
    t = max(1, min(threads, cpu.cores))
    return 1.0 + (t - 1) * efficiency


def cpu_layer_ms(layer: Layer, cpu: Cpu, params: LatencyParams, threads: int = 1, precision: str = "fp32") -> float:
    p = params.cpu.get(cpu.kind) or params.cpu["cortex-a53"]
    ghz = cpu.clock_mhz / 1000 * p.relative_speed
    speedup = thread_speedup(threads, cpu, p.thread_efficiency)
    seconds = 0.0
    if layer.kind in _MAC_KINDS:
        seconds += layer.macs / (p.conv_gmacs_per_ghz * 1e9 * ghz * speedup)
    elif layer.kind == "dwconv":
        seconds += layer.macs / (p.conv_gmacs_per_ghz * p.depthwise_efficiency * 1e9 * ghz * speedup)
    element_bytes = 1 if precision == "int8" else 4
    if layer.kind not in _FUSED_ON_CPU:
        moved = (layer.input_bytes + layer.output_bytes) * element_bytes
        seconds += moved / (p.stream_gbps * 1e9 * ghz * min(speedup, 2.0))  # memory streams scale poorly
        seconds += p.op_overhead_us * 1e-6 / ghz
    factor = params.cpu_int8_time_factor if precision == "int8" else 1.0
    return seconds * 1e3 * factor


def _effective_ghz(cpu: Cpu, params: LatencyParams) -> float:
    p = params.cpu.get(cpu.kind) or params.cpu["cortex-a53"]
    return cpu.clock_mhz / 1000 * p.relative_speed


def runner_call_ms(cpu: Cpu, params: LatencyParams) -> float:
    """Arm time of one runner call (execute_async + wait: the driver starts the core, the completion interrupt
    wakes the caller). The core's next task starts only after this round trip, so it also holds a DPU core
    once per subgraph run: the per-frame cost that bounds fast networks on several threads."""
    return params.runner_overhead_ms_at_1ghz / _effective_ghz(cpu, params)


def host_invocation_ms(input_elements: int, output_elements: int, cpu: Cpu, params: LatencyParams) -> float:
    """Arm time around one DPU subgraph run: runner call plus (de)quantising its inputs and outputs."""
    io_ms = params.io_ns_per_element_at_1ghz * 1e-6 * (input_elements + output_elements)
    return runner_call_ms(cpu, params) + io_ms / _effective_ghz(cpu, params)
