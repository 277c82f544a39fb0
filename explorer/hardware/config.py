"""The DPU configuration (`DpuConfig`) and the rules of which configurations are legal where.

One table, `FIELDS`, describes every field: its type, its choices or range and its help text. The
YAML/JSON loader, the command-line flags and the space enumeration all read it. All legality rules
live in `check_config`; each violation names its rule id and its source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from explorer.errors import ConfigError, ExplorerError, IllegalConfigError, Problem, RuleViolation, did_you_mean, unknown_keys
from explorer.hardware.database import Architecture, Board, Device, DpuIpData, HwDatabase, IpVersion, load_database

RAM_USAGES = ("low", "high")
DSP_USAGES = ("low", "high")
RELU_TYPES = ("relu_relu6", "relu_leakyrelu_relu6")


@dataclass(frozen=True, slots=True)
class DpuConfig:
    """One DPUCZDX8G configuration. Field names are used unchanged in YAML, CLI flags and JSON.

    `alu_parallel = 0` means the IP default (ALU_PARALLEL_DEFAULT = PP/2, IP 4.x only).
    """

    arch: str = "B4096"
    cores: int = 1
    ram_usage: str = "low"
    dsp_usage: str = "high"
    uram_per_core: int = 0
    depthwise: bool = True
    avg_pool: bool = True
    softmax: bool = False
    channel_augmentation: bool = True
    elew_mult: bool = True
    relu_type: str = "relu_leakyrelu_relu6"
    alu_parallel: int = 0
    alu_leakyrelu: bool = False
    save_argmax: bool = True
    clock_gating: bool = False
    dsp_cascade: int = 4
    clock_mhz: float = 300.0
    ip_version: str = "4.1"

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELD_NAMES}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: type
    help: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def _field_specs(db: HwDatabase) -> dict[str, FieldSpec]:
    ip = db.ip
    clock_lo = min(r[0] for r in ip.clock_mhz_range.values())
    clock_hi = max(r[1] for r in ip.clock_mhz_range.values())
    specs = [
        FieldSpec("arch", str, "convolution architecture (peak ops per cycle)", tuple(ip.architectures)),
        FieldSpec("cores", int, "number of DPU cores in the IP", minimum=ip.cores_range[0], maximum=ip.cores_range[1]),
        FieldSpec("ram_usage", str, "on-chip RAM usage (image bank groups 2 = low, 3 = high)", RAM_USAGES),
        FieldSpec("dsp_usage", str, "DSP48 usage: high also accumulates in DSPs", DSP_USAGES),
        FieldSpec("uram_per_core", int, "UltraRAMs per core replacing block RAM banks", minimum=0, maximum=ip.uram_n_user_max),
        FieldSpec("depthwise", bool, "depthwise convolution engine (always present on IP 4.x)"),
        FieldSpec("avg_pool", bool, "average pooling (always present on IP 4.x)"),
        FieldSpec("softmax", bool, "hardware softmax core (not on Zynq-7000)"),
        FieldSpec("channel_augmentation", bool, "channel augmentation for few-channel inputs"),
        FieldSpec("elew_mult", bool, "element-wise multiply (always present on IP 4.x; not on Zynq-7000)"),
        FieldSpec("relu_type", str, "convolution activations", RELU_TYPES),
        FieldSpec("alu_parallel", int, "ALU pixel parallelism, IP 4.x (0 = default PP/2)", (0, *ip.alu_parallel_choices)),
        FieldSpec("alu_leakyrelu", bool, "LeakyReLU in the ALU engine (IP 4.x)"),
        FieldSpec("save_argmax", bool, "argmax in the save engine (IP 4.1)"),
        FieldSpec("clock_gating", bool, "dpu_2x clock gating / low-power mode (not on Zynq-7000)"),
        FieldSpec(
            "dsp_cascade",
            int,
            "maximal DSP48 cascade length (locked to 1 on Zynq-7000)",
            minimum=ip.dsp_cascade_range[0],
            maximum=ip.dsp_cascade_range[1],
        ),
        FieldSpec("clock_mhz", float, "DPU clock (m_axi_dpu_aclk); dpu_2x_clk is twice this", minimum=clock_lo, maximum=clock_hi),
        FieldSpec("ip_version", str, "DPUCZDX8G IP version (3.x = Vitis AI 1.3-2.0, 4.x = 2.5+)", tuple(ip.ip_versions)),
    ]
    return {s.name: s for s in specs}


FIELD_NAMES = tuple(f.name for f in fields(DpuConfig))


def field_specs(db: HwDatabase | None = None) -> dict[str, FieldSpec]:
    return _field_specs(db or load_database())


def _coerce(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    """Convert one raw value to the field's type, or return an error message."""
    if spec.kind is bool:
        if isinstance(value, bool):
            return value, None
        return None, f"expected true or false, got {value!r}"
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                return None, f"expected an integer, got {value!r}"
    elif spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)
            except (TypeError, ValueError):
                return None, f"expected a number, got {value!r}"
        value = float(value)
        if not math.isfinite(value):
            return None, f"expected a finite number, got {value!r}"
    elif spec.kind is str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # `ip_version: 4.1` in YAML is a float
        if not isinstance(value, str):
            return None, f"expected a string, got {value!r}"
        if spec.name == "arch" and not value.upper().startswith("B"):
            value = "B" + value  # accept 4096 for B4096, as the IP's ARCH parameter does
        if spec.name == "arch":
            value = value.upper()
        elif spec.name != "ip_version":
            value = value.lower()
    if spec.choices and value not in spec.choices:
        msg = f"must be one of {', '.join(str(c) for c in spec.choices)}, got {value!r}"
        return None, msg + did_you_mean(str(value), [str(c) for c in spec.choices])
    if spec.minimum is not None and value < spec.minimum:
        return None, f"must be at least {spec.minimum:g}, got {value!r}"
    if spec.maximum is not None and value > spec.maximum:
        return None, f"must be at most {spec.maximum:g}, got {value!r}"
    return value, None


def defaults_for(board: Board | None, ip_version: str | None = None, db: HwDatabase | None = None) -> dict[str, Any]:
    """Field defaults that depend on the board's family and the IP version.

    IP 4.x always has depthwise, average pool and element-wise multiply; IP 3.x defaults follow the
    Vivado TRD (depthwise and average pool on, element-wise multiply off). The clock is the board's
    published default DPU clock.
    """
    db = db or load_database()
    family = board.family if board else "zynq_ultrascale_plus"
    version = ip_version or ("4.1" if family == "zynq_ultrascale_plus" else "3.4")
    ip = db.ip.ip_versions.get(version)
    v4 = bool(ip and ip.is_v4)
    return {
        "ip_version": version,
        "elew_mult": v4,
        "save_argmax": bool(ip and ip.save_argmax),
        "dsp_cascade": db.ip.dsp_cascade_default.get(family, 1),
        "clock_mhz": board.dpu_clock_mhz if board else 300.0,
    }


def parse_dpu_config(
    data: Mapping[str, Any],
    board: Board | None = None,
    *,
    source: str = "DPU configuration",
    path: str = "",
    db: HwDatabase | None = None,
) -> DpuConfig:
    """Build a DpuConfig from a mapping (YAML, JSON or flags); every problem names its path."""
    db = db or load_database()
    specs = _field_specs(db)
    problems: list[Problem] = []
    prefix = f"{path}." if path else ""
    if not isinstance(data, Mapping):
        raise ConfigError(source, [Problem(path, f"expected a mapping of DPU fields, got {type(data).__name__}")])
    values: dict[str, Any] = {}
    for key, raw in data.items():
        key_s = str(key)
        spec = specs.get(key_s)
        if spec is None:
            problems.extend(unknown_keys({key_s: raw}, FIELD_NAMES, path))
            continue
        value, error = _coerce(spec, raw)
        if error:
            problems.append(Problem(prefix + key_s, error))
        else:
            values[key_s] = value
    if problems:
        raise ConfigError(source, problems)
    merged = defaults_for(board, values.get("ip_version"), db)
    merged.update(values)
    return DpuConfig(**merged)


def per_bank_uram(arch: Architecture) -> int:
    """UltraRAMs per memory bank: a bank is 8*ICP bits wide, a URAM 72 bits (PG338 "UltraRAM")."""
    return math.ceil(8 * arch.icp / 72)


def alu_parallel_default(arch: Architecture) -> int:
    """ALU_PARALLEL_DEFAULT: the pixel parallelism of the ALU (IP 4.x) or of the depthwise/pool engine (3.x)
    when the user does not choose it: PP/2, at least 2 (docs/hardware.md §2.2). The only place of this rule."""
    return max(2, arch.pp // 2)


@dataclass(frozen=True)
class Banks:
    """Memory banks of one core: image, weight and bias."""

    img: int
    wgt: int
    bias: int

    @property
    def total(self) -> int:
        return self.img + self.wgt + self.bias


@dataclass(frozen=True)
class DpuSpec:
    """A DpuConfig resolved once against the IP tables: what resources, fingerprint, latency geometry,
    operator limits and templates need, each rule applied in one place (`resolve`)."""

    config: DpuConfig
    arch: Architecture
    ip: IpVersion
    tables: DpuIpData  # the IP-wide tables (PG338 rows, v4 fit, platform, limits, registry)
    alu_parallel: int  # the ALU's pixel parallelism: the user's choice on IP 4.x, else the default
    alu_parallel_default: int
    banks: Banks
    uram_per_bank: int  # UltraRAMs one bank needs
    uram_banks: Banks  # banks moved to UltraRAM: weights first, then bias, then image (INFERRED, docs/hardware.md §2.4)

    @property
    def uram_replaceable_banks(self) -> int:
        """How many banks of a core UltraRAM can replace (URAM_N_USER caps it)."""
        return min(self.tables.uram_n_user_max // self.uram_per_bank, self.banks.total)

    @property
    def peak_ops_per_cycle(self) -> int:
        return self.arch.peak_ops_per_cycle


def resolve(config: DpuConfig, db: HwDatabase | None = None) -> DpuSpec:
    """Resolve `config` (architecture and IP records, ALU parallelism, banks, UltraRAM split)."""
    tables = (db or load_database()).ip
    arch, ip = tables.architectures.get(config.arch), tables.ip_versions.get(config.ip_version)
    if arch is None or ip is None:
        raise ExplorerError(f"no DPU tables for arch {config.arch!r} / IP {config.ip_version!r}")
    bank_groups = 3 if config.ram_usage == "high" else 2
    banks = Banks(bank_groups * arch.pp, arch.ocp + int(ip.is_v4 or config.depthwise), 1)
    per_bank = per_bank_uram(arch)
    moved = config.uram_per_core // per_bank
    u_wgt = min(moved, banks.wgt)
    u_bias = min(moved - u_wgt, banks.bias)
    default = alu_parallel_default(arch)
    return DpuSpec(
        config=config,
        arch=arch,
        ip=ip,
        tables=tables,
        alu_parallel=(config.alu_parallel or default) if ip.is_v4 else default,
        alu_parallel_default=default,
        banks=banks,
        uram_per_bank=per_bank,
        uram_banks=Banks(min(moved - u_wgt - u_bias, banks.img), u_wgt, u_bias),
    )


def check_config(config: DpuConfig, device: Device, db: HwDatabase | None = None) -> list[RuleViolation]:
    """Every rule `config` breaks on `device` (empty when legal). Sources: PG338, docs/hardware.md."""
    db = db or load_database()
    lim = db.ip
    out: list[RuleViolation] = []
    arch = lim.architectures.get(config.arch)
    ip = lim.ip_versions.get(config.ip_version)
    if arch is None:
        out.append(RuleViolation("arch", f"unknown architecture {config.arch!r}; choose one of {', '.join(lim.architectures)}"))
    if ip is None:
        out.append(
            RuleViolation("ip-version", f"unknown IP version {config.ip_version!r}; choose one of {', '.join(lim.ip_versions)}")
        )
    if arch is None or ip is None:
        return out
    return [
        *_device_rules(config, device, ip, lim),
        *_ip_option_rules(config, arch, ip, lim),
        *_uram_rules(config, device, arch, db),
        *_clock_rules(config, device, lim),
    ]


def _family_name(device: Device) -> str:
    return "Zynq-7000" if device.family == "zynq7000" else "Zynq UltraScale+"


def _device_rules(config: DpuConfig, device: Device, ip: IpVersion, lim: DpuIpData) -> list[RuleViolation]:
    """What the device family allows: the IP version, the core count, the Zynq-7000 limits, DSP cascade."""
    out: list[RuleViolation] = []
    z7 = device.family == "zynq7000"
    fam = _family_name(device)
    if device.family not in ip.families:
        out.append(
            RuleViolation(
                "ip-family",
                f"DPU IP {ip.version} is not available for {fam} ({device.name}); IP 4.x support of Zynq-7000 is "
                "UNVERIFIED (PG338 v4.x covers Zynq UltraScale+, DPU-PYNQ 2.5 dropped Pynq-Z2): use IP 3.4",
            )
        )
    lo, hi = lim.cores_range
    if not lo <= config.cores <= hi:
        out.append(RuleViolation("cores", f"cores must be {lo}-{hi} (PG338 'Number of DPU Cores'), got {config.cores}"))
    if z7 and config.softmax:
        out.append(RuleViolation("softmax-zynq7000", "the softmax core is not supported on Zynq-7000 (PG338 'Softmax')"))
    if z7 and config.elew_mult:
        out.append(
            RuleViolation(
                "elew-mult-zynq7000", "element-wise multiply is not supported on Zynq-7000 (PG338 'ElementWise Multiply')"
            )
        )
    if z7 and config.clock_gating:
        out.append(
            RuleViolation("clock-gating-zynq7000", "dpu_2x clock gating is not supported on Zynq-7000 (PG338 'Advanced Tab')")
        )
    c_lo, c_hi = lim.dsp_cascade_range
    if z7 and config.dsp_cascade != 1:
        out.append(
            RuleViolation(
                "dsp-cascade-zynq7000", f"DSP cascade is locked to 1 on Zynq-7000 (PG338 'DSP Cascade'), got {config.dsp_cascade}"
            )
        )
    elif not c_lo <= config.dsp_cascade <= c_hi:
        out.append(
            RuleViolation(
                "dsp-cascade", f"DSP cascade length must be {c_lo}-{c_hi} (CONV_DSP_CASC_MAX), got {config.dsp_cascade}"
            )
        )
    return out


def _ip_option_rules(config: DpuConfig, arch: Architecture, ip: IpVersion, lim: DpuIpData) -> list[RuleViolation]:
    """Options the IP version fixes or adds: the v4 ALU (always-on engines, parallelism, LeakyReLU), argmax."""
    out: list[RuleViolation] = []
    if ip.is_v4:
        fixed = [name for name in ("depthwise", "avg_pool", "elew_mult") if not getattr(config, name)]
        if fixed:
            out.append(
                RuleViolation(
                    "v4-fixed-options",
                    f"{', '.join(fixed)} cannot be disabled on IP {ip.version}: the ALU always has depthwise, average pool "
                    "and element-wise multiply (IP 4.0 changelog, docs/hardware.md §1.4)",
                )
            )
        if config.alu_parallel and config.alu_parallel not in lim.alu_parallel_choices:
            out.append(
                RuleViolation(
                    "alu-parallel",
                    f"alu_parallel must be 0 (default) or one of {lim.alu_parallel_choices}, got {config.alu_parallel}",
                )
            )
        elif config.alu_parallel > arch.pp:
            out.append(
                RuleViolation(
                    "alu-parallel",
                    f"alu_parallel {config.alu_parallel} exceeds the pixel parallelism {arch.pp} of {arch.name} "
                    "(ALU parallel ranges 1..PP, README_DPUCZ_Vivado v3.0; legal values UNVERIFIED)",
                )
            )
        if config.save_argmax and not ip.save_argmax:
            out.append(RuleViolation("save-argmax", f"save_argmax needs IP 4.1 (Vitis AI 3.0+); IP {ip.version} has no argmax"))
    else:
        if config.alu_parallel:
            out.append(
                RuleViolation("alu-parallel", f"alu_parallel is an IP 4.x option; IP {ip.version} fixes it at PP/2 (set 0)")
            )
        if config.alu_leakyrelu:
            out.append(RuleViolation("alu-leakyrelu", f"alu_leakyrelu is an IP 4.x option, not available on IP {ip.version}"))
        if config.save_argmax:
            out.append(RuleViolation("save-argmax", f"save_argmax needs IP 4.1 (Vitis AI 3.0+); IP {ip.version} has no argmax"))
    return out


def _uram_rules(config: DpuConfig, device: Device, arch: Architecture, db: HwDatabase) -> list[RuleViolation]:
    """UltraRAM: on the device at all, whole banks, no more than the banks it replaces, no more than there is."""
    out: list[RuleViolation] = []
    lim = db.ip
    if config.uram_per_core:
        per_bank = per_bank_uram(arch)
        if device.uram == 0:
            out.append(RuleViolation("uram-device", f"{device.name} has no UltraRAM; set uram_per_core to 0"))
        elif config.uram_per_core % per_bank:
            out.append(
                RuleViolation(
                    "uram-multiple",
                    f"uram_per_core must be a multiple of {per_bank} for {arch.name}: one memory bank of {8 * arch.icp} bits "
                    "needs that many 72-bit UltraRAMs (PG338 'UltraRAM')",
                )
            )
        else:
            top = resolve(config, db).uram_replaceable_banks * per_bank
            if config.uram_per_core > top:
                out.append(
                    RuleViolation(
                        "uram-max",
                        f"uram_per_core {config.uram_per_core} exceeds {top}, the UltraRAM that replaces every bank of "
                        f"{arch.name} with RAM usage {config.ram_usage} (URAM_N_USER <= {lim.uram_n_user_max})",
                    )
                )
            if config.uram_per_core * config.cores > device.uram:
                out.append(
                    RuleViolation(
                        "uram-capacity",
                        f"{config.cores} core(s) x {config.uram_per_core} UltraRAM = {config.cores * config.uram_per_core} "
                        f"exceeds the {device.uram} UltraRAMs of {device.name}",
                    )
                )
    return out


def _clock_rules(config: DpuConfig, device: Device, lim: DpuIpData) -> list[RuleViolation]:
    out: list[RuleViolation] = []
    fam = _family_name(device)
    clock_range = lim.clock_mhz_range.get(device.family)
    if clock_range and not clock_range[0] <= config.clock_mhz <= clock_range[1]:
        out.append(
            RuleViolation(
                "clock-range",
                f"clock_mhz {config.clock_mhz:g} is outside {clock_range[0]:g}-{clock_range[1]:g} MHz for {fam} "
                "(maximum = highest PG338 Table 12 clock; per-speed-grade limits UNVERIFIED)",
            )
        )
    return out


def require_legal(config: DpuConfig, device: Device, db: HwDatabase | None = None) -> DpuConfig:
    violations = check_config(config, device, db)
    if violations:
        raise IllegalConfigError(violations)
    return config
