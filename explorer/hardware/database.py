"""The hardware database: devices, boards and DPU IP tables read from the bundled `hw/` YAML files.

Everything here is data with units in the field names. Values that no primary source confirmed carry
`verified=False` (devices) or an entry in `Board.unverified`, and are shown with that mark.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from explorer.datafiles import data_path
from explorer.errors import ExplorerError, UnknownNameError
from explorer.fileio import safe_load

FAMILIES = ("zynq7000", "zynq_ultrascale_plus")
RESOURCE_KINDS = ("lut", "ff", "bram36", "uram", "dsp")


@dataclass(frozen=True)
class Device:
    name: str
    family: str
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    dsp_primitive: str
    verified: bool
    note: str

    def capacity(self, kind: str) -> int:
        return int(getattr(self, kind))


@dataclass(frozen=True)
class Cpu:
    kind: str
    cores: int
    clock_mhz: float


@dataclass(frozen=True)
class Ddr:
    kind: str
    bus_bits: int
    mt_per_s: float

    @property
    def peak_gbps(self) -> float:
        """Theoretical peak bandwidth in GB/s: bus width in bytes x transfer rate."""
        return self.bus_bits / 8 * self.mt_per_s / 1000


@dataclass(frozen=True)
class Board:
    name: str
    device: Device
    part: str
    board_part: str
    ps_type: str
    cpu: Cpu
    ddr: Ddr
    dpu_clock_mhz: float
    dpu_pynq: Mapping[str, Any]
    unverified: Mapping[str, str]
    sources: Mapping[str, str]

    @property
    def family(self) -> str:
        return self.device.family


@dataclass(frozen=True)
class Architecture:
    name: str
    code: int
    pp: int
    icp: int
    ocp: int

    @property
    def peak_ops_per_cycle(self) -> int:
        return 2 * self.pp * self.icp * self.ocp


@dataclass(frozen=True)
class IpVersion:
    version: str
    isa: int
    vitis_ai: str
    vlnv: str
    families: tuple[str, ...]
    registry: str
    pool_parallel_rule: str = ""
    save_argmax: bool = False
    conv_hard_activations: bool = False  # HardSigmoid/HardSwish as activations of a convolution (IP 4.x)
    alu_kernel_max: int = 8  # pooling kernel limit: PG338 Table 1 on 3.x, the ALU's 256 on 4.x
    alu_hard_activations: bool = False  # HardSigmoid/HardSwish after a depthwise convolution (ALU hsigmoid, 4.x)

    @property
    def is_v4(self) -> bool:
        return self.isa >= 1


@dataclass(frozen=True)
class SoftmaxResources:
    lut: int
    ff: int
    bram36: float
    dsp: int


@dataclass(frozen=True)
class CoreResources:
    """LUT, FF, BRAM36 and DSP of one published DPU core."""

    lut: int
    ff: int
    bram36: float
    dsp: int


@dataclass(frozen=True)
class LutFf:
    """The LUT and FF a published option adds (negative: removes)."""

    lut: int
    ff: int


@dataclass(frozen=True)
class AluRow:
    """One published IP 4.x B4096 core at one ALU parallelism."""

    alu_parallel: int
    lut: int
    ff: int
    bram36: float
    dsp: int


@dataclass(frozen=True)
class V3Tables:
    """PG338 v3.x Tables 3, 5-11 (seed 004_...): LUT/FF of the reference core and of each option."""

    reference_core: Mapping[str, CoreResources]
    channel_augmentation_lut: Mapping[str, int]
    depthwise_lut: Mapping[str, int]
    elew_mult: Mapping[str, LutFf]
    avg_pool_lut: Mapping[str, int]
    leakyrelu_lut: Mapping[str, int]
    low_dsp_extra: Mapping[str, LutFf]
    softmax: SoftmaxResources


@dataclass(frozen=True)
class V4AluFit:
    """Fitted IP 4.x coefficients (see hw/dpu_ip.yaml `v4_alu_fit` for what they were fitted to)."""

    fitted_to: str
    lut_offset: float
    lut_per_alu_lane: float
    ff_offset: float
    ff_per_alu_lane: float
    rows: tuple[AluRow, ...]
    softmax: SoftmaxResources


@dataclass(frozen=True)
class PlatformEstimate:
    interconnect_lut_per_core: int
    interconnect_ff_per_core: int
    reset_lut: int
    reset_ff: int
    reset_count: int
    clk_wiz_lut: int
    clk_wiz_ff: int


@dataclass(frozen=True)
class DpuIpData:
    architectures: Mapping[str, Architecture]
    ip_versions: Mapping[str, IpVersion]
    cores_range: tuple[int, int]
    bank_depth: int
    uram_n_user_max: int
    dsp_cascade_range: tuple[int, int]
    dsp_cascade_default: Mapping[str, int]
    alu_parallel_choices: tuple[int, ...]
    clock_mhz_range: Mapping[str, tuple[float, float]]
    v3: V3Tables
    v4: V4AluFit
    platform: PlatformEstimate
    registry: Mapping[str, Mapping[int, str]] = field(default_factory=dict)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class HwDatabase:
    devices: Mapping[str, Device]
    boards: Mapping[str, Board]
    ip: DpuIpData

    def board(self, name: str) -> Board:
        for board in self.boards.values():
            if _norm(board.name) == _norm(name):
                return board
        raise UnknownNameError("board", name, list(self.boards))

    def device(self, name: str) -> Device:
        for device in self.devices.values():
            if _norm(device.name) == _norm(name):
                return device
        raise UnknownNameError("device", name, list(self.devices))


def _load_yaml(*parts: str) -> dict[str, Any]:
    path = data_path(*parts)
    with path.open(encoding="utf-8") as handle:
        data = safe_load(handle)
    if not isinstance(data, dict):
        raise ExplorerError(f"{path}: expected a mapping at the top level")
    return data


def _softmax(raw: Mapping[str, Any]) -> SoftmaxResources:
    return SoftmaxResources(int(raw["lut"]), int(raw["ff"]), float(raw["bram36"]), int(raw["dsp"]))


def _parse_ip(raw: Mapping[str, Any]) -> DpuIpData:
    archs = {
        name: Architecture(name, int(a["code"]), int(a["pp"]), int(a["icp"]), int(a["ocp"]))
        for name, a in raw["architectures"].items()
    }
    versions = {
        str(ver): IpVersion(
            version=str(ver),
            isa=int(v["isa"]),
            vitis_ai=str(v["vitis_ai"]),
            vlnv=str(v["vlnv"]),
            families=tuple(v["families"]),
            registry=str(v["registry"]),
            pool_parallel_rule=str(v.get("pool_parallel_rule", "")),
            save_argmax=bool(v.get("save_argmax", False)),
            conv_hard_activations=bool(v.get("conv_hard_activations", False)),
            alu_kernel_max=int(v.get("alu_kernel_max", 8)),
            alu_hard_activations=bool(v.get("alu_hard_activations", False)),
        )
        for ver, v in raw["ip_versions"].items()
    }
    lim = raw["limits"]
    t = raw["pg338_v3"]
    v3 = V3Tables(
        reference_core={
            k: CoreResources(int(r["lut"]), int(r["ff"]), float(r["bram36"]), int(r["dsp"]))
            for k, r in t["reference_core"].items()
        },
        channel_augmentation_lut=dict(t["channel_augmentation_lut"]),
        depthwise_lut=dict(t["depthwise_lut"]),
        elew_mult={k: LutFf(int(r["lut"]), int(r["ff"])) for k, r in t["elew_mult"].items()},
        avg_pool_lut=dict(t["avg_pool_lut"]),
        leakyrelu_lut=dict(t["leakyrelu_lut"]),
        low_dsp_extra={k: LutFf(int(r["lut"]), int(r["ff"])) for k, r in t["low_dsp_extra"].items()},
        softmax=_softmax(t["softmax"]),
    )
    f = raw["v4_alu_fit"]
    v4 = V4AluFit(
        fitted_to=str(f["fitted_to"]),
        lut_offset=float(f["lut_offset"]),
        lut_per_alu_lane=float(f["lut_per_alu_lane"]),
        ff_offset=float(f["ff_offset"]),
        ff_per_alu_lane=float(f["ff_per_alu_lane"]),
        rows=tuple(
            AluRow(int(r["alu_parallel"]), int(r["lut"]), int(r["ff"]), float(r["bram36"]), int(r["dsp"])) for r in f["rows"]
        ),
        softmax=_softmax(f["softmax"]),
    )
    p = raw["platform"]
    platform = PlatformEstimate(
        interconnect_lut_per_core=int(p["interconnect_per_core"]["lut"]),
        interconnect_ff_per_core=int(p["interconnect_per_core"]["ff"]),
        reset_lut=int(p["proc_sys_reset"]["lut"]),
        reset_ff=int(p["proc_sys_reset"]["ff"]),
        reset_count=int(p["proc_sys_reset"]["count"]),
        clk_wiz_lut=int(p["clk_wiz"]["lut"]),
        clk_wiz_ff=int(p["clk_wiz"]["ff"]),
    )
    registry = {
        reg: {int(code, 16): name for name, code in entries.items()} for reg, entries in raw["fingerprint_registry"].items()
    }
    return DpuIpData(
        architectures=archs,
        ip_versions=versions,
        cores_range=(int(lim["cores"][0]), int(lim["cores"][1])),
        bank_depth=int(lim["bank_depth"]),
        uram_n_user_max=int(lim["uram_n_user_max"]),
        dsp_cascade_range=(int(lim["dsp_cascade"][0]), int(lim["dsp_cascade"][1])),
        dsp_cascade_default=dict(lim["dsp_cascade_default"]),
        alu_parallel_choices=tuple(int(x) for x in lim["alu_parallel_choices"]),
        clock_mhz_range={k: (float(v[0]), float(v[1])) for k, v in lim["clock_mhz"].items()},
        v3=v3,
        v4=v4,
        platform=platform,
        registry=registry,
    )


@functools.cache
def load_database() -> HwDatabase:
    """Read the bundled hardware database once per process."""
    dev_raw = _load_yaml("hw", "devices.yaml")
    devices = {
        d["name"]: Device(
            name=str(d["name"]),
            family=str(d["family"]),
            lut=int(d["lut"]),
            ff=int(d["ff"]),
            bram36=int(d["bram36"]),
            uram=int(d["uram"]),
            dsp=int(d["dsp"]),
            dsp_primitive=str(d["dsp_primitive"]),
            verified=bool(d["verified"]),
            note=str(d.get("note", "")),
        )
        for d in dev_raw["devices"]
    }
    board_raw = _load_yaml("hw", "boards.yaml")
    boards: dict[str, Board] = {}
    for b in board_raw["boards"]:
        cpu, ddr = b["cpu"], b["ddr"]
        boards[b["name"]] = Board(
            name=str(b["name"]),
            device=devices[b["device"]],
            part=str(b["part"]),
            board_part=str(b["board_part"]),
            ps_type=str(b["ps_type"]),
            cpu=Cpu(str(cpu["kind"]), int(cpu["cores"]), float(cpu["clock_mhz"])),
            ddr=Ddr(str(ddr["kind"]), int(ddr["bus_bits"]), float(ddr["mt_per_s"])),
            dpu_clock_mhz=float(b["dpu_clock_mhz"]),
            dpu_pynq=dict(b.get("dpu_pynq") or {}),
            unverified=dict(b.get("unverified") or {}),
            sources=dict(b.get("sources") or {}),
        )
    ip = _parse_ip(_load_yaml("hw", "dpu_ip.yaml"))
    return HwDatabase(devices=devices, boards=boards, ip=ip)
