"""The latency model's parameters, read once from hw/latency_model.yaml; refitted values written back."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from explorer.datafiles import data_path
from explorer.errors import ExplorerError
from explorer.fileio import safe_load


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
    traffic_share: float
    layer_overhead_cycles: float
    port_efficiency: float
    ddr_efficiency: float
    overlap_loss: float
    core_sharing: float
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
        if "relative_speed" in entry and "relative_speed" in entry.get("fitted", {}):
            # one value must win: a fixed one beside a fitted one hid the refit once
            raise ValueError(f"cpu kind {kind}: relative_speed is both fixed and fitted")
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


PARAMS_FILE = ("hw", "latency_model.yaml")
DPU_FITTED = ("layer_overhead_cycles", "port_efficiency", "ddr_efficiency", "overlap_loss", "core_sharing")
HOST_FITTED = ("runner_overhead_ms_at_1ghz", "io_ns_per_element_at_1ghz")
CPU_FITTED = {
    "cortex-a53": ("conv_gmacs_per_ghz", "depthwise_efficiency", "stream_gbps", "op_overhead_us", "thread_efficiency"),
    "cortex-a9": ("relative_speed", "thread_efficiency"),
}


def read_params(path: Path) -> LatencyParams:
    with path.open(encoding="utf-8") as handle:
        raw = safe_load(handle)
    dpu, host, cpu = raw["dpu"], raw["host"], raw["cpu"]
    return LatencyParams(
        data_ports_per_core=int(dpu["data_ports_per_core"]),
        load_parallel=int(dpu["load_parallel"]),
        port_width_bits={k: int(v) for k, v in dpu["port_width_bits"].items()},
        softmax_elements_per_cycle=float(dpu["softmax_elements_per_cycle"]),
        traffic_share=float(dpu["traffic_share"]),
        layer_overhead_cycles=float(dpu["fitted"]["layer_overhead_cycles"]),
        port_efficiency=float(dpu["fitted"]["port_efficiency"]),
        ddr_efficiency=float(dpu["fitted"]["ddr_efficiency"]),
        overlap_loss=float(dpu["fitted"]["overlap_loss"]),
        core_sharing=float(dpu["fitted"]["core_sharing"]),
        runner_overhead_ms_at_1ghz=float(host["fitted"]["runner_overhead_ms_at_1ghz"]),
        io_ns_per_element_at_1ghz=float(host["fitted"]["io_ns_per_element_at_1ghz"]),
        cpu_int8_time_factor=float(cpu["int8_time_factor"]),
        cpu=_cpu_kinds(cpu["kinds"]),
    )


@functools.cache
def load_params() -> LatencyParams:
    return read_params(data_path(*PARAMS_FILE))


def write_fitted(params: LatencyParams, path: Path) -> None:
    """Write the fitted values into the `fitted:` blocks of `path` with a round-trip YAML writer (ruamel.yaml,
    a dev dependency: only the refit writes), so its comments, order and layout stay."""
    try:
        from ruamel.yaml import YAML
    except ImportError as exc:
        raise ExplorerError("writing fitted values needs ruamel.yaml: pip install -e '.[dev]'") from exc
    writer = YAML()
    writer.preserve_quotes = True
    writer.width = 4096
    writer.indent(mapping=2, sequence=4, offset=2)
    data = writer.load(path)

    def put(where: tuple[str, ...], key: str, value: float) -> None:
        node = data
        for part in (*where, "fitted", key):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"{path}: cannot find {'.'.join((*where, 'fitted', key))} (no {part!r} key)")
            if part != key:
                node = node[part]
        rounded = float(f"{value:.4g}")
        node[key] = int(rounded) if rounded.is_integer() else rounded  # 2484, not 2484.0

    for key in DPU_FITTED:
        put(("dpu",), key, getattr(params, key))
    for key in HOST_FITTED:
        put(("host",), key, getattr(params, key))
    for kind, keys in CPU_FITTED.items():
        for key in keys:
            put(("cpu", "kinds", kind), key, getattr(params.cpu[kind], key))
    writer.dump(data, path)
