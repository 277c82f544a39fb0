"""The latency model's parameters, read once from hw/latency_model.yaml."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import yaml

from explorer.datafiles import data_path


@dataclass(frozen=True)
class CpuKindParams:
    conv_gmacs_per_ghz: float
    depthwise_efficiency: float
    stream_gbps: float
    op_overhead_us: float
    thread_efficiency: float
    relative_speed: float  # per clock, relative to the Cortex-A53


@dataclass(frozen=True)
class LatencyParams:
    data_ports_per_core: int
    load_parallel: int
    port_width_bits: dict[str, int]
    softmax_elements_per_cycle: float
    layer_overhead_cycles: float
    port_efficiency: float
    ddr_efficiency: float
    runner_overhead_ms_at_1ghz: float
    io_ns_per_element_at_1ghz: float
    cpu_int8_time_factor: float
    cpu: dict[str, CpuKindParams]

    def with_values(self, **values: float) -> LatencyParams:
        return replace(self, **values)  # type: ignore[arg-type]


def _cpu_kinds(raw: dict[str, Any]) -> dict[str, CpuKindParams]:
    base = raw["cortex-a53"]["fitted"]
    out = {}
    for kind, entry in raw.items():
        fitted = {**base, **entry.get("fitted", {})}
        out[kind] = CpuKindParams(
            conv_gmacs_per_ghz=float(fitted["conv_gmacs_per_ghz"]),
            depthwise_efficiency=float(fitted["depthwise_efficiency"]),
            stream_gbps=float(fitted["stream_gbps"]),
            op_overhead_us=float(fitted["op_overhead_us"]),
            thread_efficiency=float(fitted["thread_efficiency"]),
            relative_speed=float(fitted.get("relative_speed", entry.get("relative_speed", 1.0))),
        )
    return out


@functools.cache
def load_params() -> LatencyParams:
    with data_path("hw", "latency_model.yaml").open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    dpu, host, cpu = raw["dpu"], raw["host"], raw["cpu"]
    return LatencyParams(
        data_ports_per_core=int(dpu["data_ports_per_core"]),
        load_parallel=int(dpu["load_parallel"]),
        port_width_bits={k: int(v) for k, v in dpu["port_width_bits"].items()},
        softmax_elements_per_cycle=float(dpu["softmax_elements_per_cycle"]),
        layer_overhead_cycles=float(dpu["fitted"]["layer_overhead_cycles"]),
        port_efficiency=float(dpu["fitted"]["port_efficiency"]),
        ddr_efficiency=float(dpu["fitted"]["ddr_efficiency"]),
        runner_overhead_ms_at_1ghz=float(host["runner_overhead_ms_at_1ghz"]),
        io_ns_per_element_at_1ghz=float(host["fitted"]["io_ns_per_element_at_1ghz"]),
        cpu_int8_time_factor=float(cpu["int8_time_factor"]),
        cpu=_cpu_kinds(cpu["kinds"]),
    )
