"""Resource model of the DPU IP and the platform around it, the fit check, and peak GOPS.

Every number here is an estimate (source: model). How it is built:

* DSP and BRAM36/URAM come from the IP's own formulas (gtcl, docs/hardware.md §2.4): DSPs from the
  multiplier array (PP*ICP*OCP/4, + PP*OCP accumulators with DSP usage high) and the depthwise/ALU
  engine; block RAM from the number of 2048-deep image/weight/bias banks of 8*ICP bits.
* LUT and FF of IP 3.x are PG338 Table 3 (reference core) plus or minus the per-option rows of
  Tables 5-11: the product guide is the specification of these numbers.
* IP 4.x: the 3.x core with its always-on ALU options, plus a fitted offset and a fitted cost per
  ALU lane (hw/dpu_ip.yaml `v4_alu_fit`, refitted by bench/resource_fit.py).
* The platform (interconnect, resets, clocking) is a documented estimate (hw/dpu_ip.yaml `platform`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from explorer.errors import ExplorerError
from explorer.hardware.config import DpuSpec
from explorer.hardware.database import RESOURCE_KINDS, Device

#: Default utilisation ceilings for timing closure. Routing congestion grows past ~80 % LUT/FF; the
#: ZCU102 TRD (3 x B4096) closes at 325 MHz with 84 % BRAM; DSPs are hard blocks and the DPU-PYNQ
#: Ultra96-V2 design (B1600, DSP usage high: 326 of 360 DSP by this model) builds at 200/400 MHz.
DEFAULT_CEILINGS: Mapping[str, float] = {"lut": 0.80, "ff": 0.80, "bram36": 0.90, "uram": 0.90, "dsp": 0.95}


@dataclass(frozen=True, slots=True)
class Resources:
    lut: float = 0.0
    ff: float = 0.0
    bram36: float = 0.0
    uram: float = 0.0
    dsp: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.lut + other.lut, self.ff + other.ff, self.bram36 + other.bram36, self.uram + other.uram, self.dsp + other.dsp
        )

    def scaled(self, factor: float) -> Resources:
        return Resources(self.lut * factor, self.ff * factor, self.bram36 * factor, self.uram * factor, self.dsp * factor)

    def get(self, kind: str) -> float:
        return float(getattr(self, kind))

    def to_dict(self) -> dict[str, float]:
        return {k: (int(v) if float(v).is_integer() else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ResourceEstimate:
    """Resources of one design point, broken down, always labelled as a model estimate."""

    per_core: Resources
    cores: int
    softmax: Resources
    platform: Resources
    source: str = "model"
    notes: tuple[str, ...] = ()

    @property
    def dpu_ip(self) -> Resources:
        return self.per_core.scaled(self.cores) + self.softmax

    @property
    def total(self) -> Resources:
        return self.dpu_ip + self.platform


def v3_core_lut_ff(spec: DpuSpec, *, v4: bool) -> tuple[float, float]:
    """LUT/FF of one core from PG338 Tables 3 and 5-11 (with the ALU options on when `v4`)."""
    config, t, arch = spec.config, spec.tables.v3, spec.arch.name
    lut, ff = float(t.reference_core[arch].lut), float(t.reference_core[arch].ff)
    depthwise, avg_pool, elew_mult = (True, True, True) if v4 else (config.depthwise, config.avg_pool, config.elew_mult)
    if not config.channel_augmentation:
        lut -= t.channel_augmentation_lut[arch]
    if not depthwise:
        lut -= t.depthwise_lut[arch]
    if elew_mult:
        lut += t.elew_mult[arch].lut
        ff += t.elew_mult[arch].ff
    if not avg_pool:
        lut -= t.avg_pool_lut[arch]
    if config.relu_type == "relu_relu6":
        lut -= t.leakyrelu_lut[arch]
    if config.dsp_usage == "high":
        lut -= t.low_dsp_extra[arch].lut
        ff -= t.low_dsp_extra[arch].ff
    return lut, ff


def dsp_per_core(spec: DpuSpec) -> int:
    """gtcl CONV_DSP_NUM + DWCV_DSP_NUM (3.x) or ALU_DSP_NUM (4.x, INFERRED) + 2, + ICP for elew mult (3.x)."""
    config, arch, ip, alu_pp = spec.config, spec.arch, spec.ip, spec.alu_parallel
    conv = arch.pp * arch.icp * arch.ocp // 4 + (arch.pp * arch.ocp if config.dsp_usage == "high" else 0)
    if ip.is_v4:
        engine = alu_pp * arch.icp + 4  # INFERRED: fits PG338 4.x ALU 1/2/4/8 rows and two xci values
    else:
        engine = (math.ceil(alu_pp * arch.icp / 4) + alu_pp * arch.icp // 2) if config.depthwise else 0
        engine += arch.icp if config.elew_mult else 0  # PG338 Table 7: ELEW_PARALLEL (1) x ICP
    return conv + engine + 2


def memory_per_core(spec: DpuSpec) -> tuple[float, int]:
    """(BRAM36, URAM) of one core: banks of 8*ICP bits x 2048, some moved to UltraRAM (`DpuSpec.uram_banks`)."""
    arch, banks, moved = spec.arch, spec.banks, spec.uram_banks
    bram = (banks.total - moved.total) * math.ceil(8 * arch.icp / 9) / 2
    if not spec.ip.is_v4:  # second gtcl term (v3.x only; the v4.0 table has no such term, docs/hardware.md §2.4)
        bram += math.ceil((12 + math.ceil(math.log2(banks.img)) + 8 * arch.icp) / 36) / 2
    return bram, moved.total * spec.uram_per_bank


def estimate_resources(spec: DpuSpec) -> ResourceEstimate:
    """LUT/FF/BRAM36/URAM/DSP of the DPU IP (per core and softmax) and of the platform around it."""
    config, ip, tables = spec.config, spec.ip, spec.tables
    lut, ff = v3_core_lut_ff(spec, v4=ip.is_v4)
    notes: list[str] = []
    if ip.is_v4:
        fit = tables.v4
        extra_lanes = spec.arch.icp * (spec.alu_parallel - spec.alu_parallel_default)
        lut += fit.lut_offset + fit.lut_per_alu_lane * extra_lanes
        ff += fit.ff_offset + fit.ff_per_alu_lane * extra_lanes
        softmax_data = fit.softmax
        notes.append(f"IP {ip.version} LUT/FF: PG338 3.x tables + ALU fit ({fit.fitted_to})")
    else:
        softmax_data = tables.v3.softmax
        notes.append("IP 3.x LUT/FF: PG338 Tables 3, 5-11; FF of options other than DSP usage and elew mult are not published")
    bram, uram = memory_per_core(spec)
    per_core = Resources(lut=round(lut), ff=round(ff), bram36=bram, uram=uram, dsp=dsp_per_core(spec))
    softmax = (
        Resources(softmax_data.lut, softmax_data.ff, softmax_data.bram36, 0, softmax_data.dsp) if config.softmax else Resources()
    )
    p = tables.platform
    platform = Resources(
        lut=p.interconnect_lut_per_core * config.cores + p.reset_lut * p.reset_count + p.clk_wiz_lut,
        ff=p.interconnect_ff_per_core * config.cores + p.reset_ff * p.reset_count + p.clk_wiz_ff,
    )
    notes.append("platform (interconnect, resets, clocking): documented estimate, hw/dpu_ip.yaml 'platform'")
    return ResourceEstimate(per_core=per_core, cores=config.cores, softmax=softmax, platform=platform, notes=tuple(notes))


def peak_gops(spec: DpuSpec) -> float:
    """Peak GOPS = 2*PP*ICP*OCP ops per cycle x cores x clock (PG338 Table 2 note, Table 12)."""
    return spec.peak_ops_per_cycle * spec.config.cores * spec.config.clock_mhz / 1000.0


@dataclass(frozen=True)
class ResourceFit:
    used: float
    available: int
    ceiling: float

    @property
    def utilization(self) -> float:
        if self.available == 0:
            return 0.0 if self.used == 0 else math.inf
        return self.used / self.available

    @property
    def headroom(self) -> float:
        """Fraction of the device still usable under the ceiling (negative = over the ceiling)."""
        return self.ceiling - self.utilization if self.available else (0.0 if self.used == 0 else -math.inf)

    @property
    def fits(self) -> bool:
        return self.used <= self.ceiling * self.available


@dataclass(frozen=True)
class FitReport:
    device: str
    resources: Mapping[str, ResourceFit] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return all(r.fits for r in self.resources.values())

    @property
    def headroom(self) -> dict[str, float]:
        return {kind: r.headroom for kind, r in self.resources.items()}

    def constraint_value(self) -> float:
        """Largest utilisation relative to its ceiling, minus 1: <= 0 when the design fits."""
        return max((r.utilization / r.ceiling for r in self.resources.values()), default=0.0) - 1.0


def validate_ceilings(ceilings: Mapping[str, float]) -> dict[str, float]:
    merged = dict(DEFAULT_CEILINGS)
    for kind, value in ceilings.items():
        if kind not in RESOURCE_KINDS:
            raise ExplorerError(f"unknown resource {kind!r} in utilisation ceilings; use {', '.join(RESOURCE_KINDS)}")
        if not 0.0 < float(value) <= 1.0:
            raise ExplorerError(f"utilisation ceiling for {kind} must be in (0, 1], got {value}")
        merged[kind] = float(value)
    return merged


def check_fit(total: Resources, device: Device, ceilings: Mapping[str, float] | None = None) -> FitReport:
    limits = validate_ceilings(ceilings or {})
    return FitReport(
        device=device.name,
        resources={kind: ResourceFit(total.get(kind), device.capacity(kind), limits[kind]) for kind in RESOURCE_KINDS},
    )
