"""The arch.json fingerprint of a DPU configuration, and its target name.

Layout (docs/hardware.md §1.2-1.5): bits 63:56 DPU type (1 = DPUCZDX8G), 55:48 ISA version, 47:0 feature
code. ISA0 (IP 3.x) follows the IP's own encoder `fingerprint_json.ttcl`. The ISA1 (IP 4.x) encoder is
not public: its bit-to-parameter mapping is INFERRED from the VART decoder and published pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from explorer.hardware.config import DpuSpec

DPU_TYPE_DPUCZDX8G = 1


def _pool_dw_parallel(spec: DpuSpec) -> tuple[int, int]:
    """(PL_PP, DW_PP) as the ISA0 encoder writes them (docs/hardware.md §1.3): the default ALU parallelism,
    except that the IP 3.3 encoder writes PP/2 for PL_PP whatever DWCV is (its `half_pp` rule)."""
    config, half = spec.config, spec.alu_parallel_default
    dw_pp = half if config.depthwise else 0
    if spec.ip.pool_parallel_rule == "half_pp":
        return spec.arch.pp // 2, dw_pp
    return (half if config.depthwise else 1), dw_pp


def feature_code(spec: DpuSpec) -> int:
    """The 48-bit feature code of a configuration for its IP version's ISA."""
    config, arch, ip = spec.config, spec.arch, spec.ip
    img_bg = 3 if config.ram_usage == "high" else 2
    leaky = int(config.relu_type == "relu_leakyrelu_relu6")
    if ip.isa == 0:
        pl_pp, dw_pp = _pool_dw_parallel(spec)
        relu6 = 1  # CONV_RELU_ADDON is 2 or 3: ReLU6 is always present
        code = arch.code | pl_pp << 8 | dw_pp << 12 | 1 << 16  # EL_PP = ELEW_PARALLEL = 1
        code |= img_bg << 24 | int(config.channel_augmentation) << 26 | leaky << 28 | relu6 << 29
        code |= int(config.avg_pool) << 30 | (relu6 if config.depthwise else 0) << 31
        code |= int(config.elew_mult) << 36 | 1 << 37  # PL_DSM: max-reduce pooling always present
        return code
    # ISA1 (INFERRED mapping). Bits 23:16 are 0x01 in every published fingerprint (meaning unknown);
    # conv and ALU write parallelism (bits 33:32, 35:34) stay at the IP default 1 -> log2 = 0.
    code = arch.code | spec.alu_parallel << 8 | 0x01 << 16
    code |= img_bg << 24 | int(config.channel_augmentation) << 26 | leaky << 28
    code |= int(config.alu_leakyrelu) << 29 | int(config.save_argmax and ip.save_argmax) << 30
    return code


def fingerprint(spec: DpuSpec) -> int:
    return DPU_TYPE_DPUCZDX8G << 56 | spec.ip.isa << 48 | feature_code(spec)


def target_name(spec: DpuSpec) -> str:
    """The registered target name when the fingerprint is registered, else the decoded-name form."""
    ip = spec.ip
    registered = spec.tables.registry.get(ip.registry, {}).get(feature_code(spec))
    if registered:
        return f"DPUCZDX8G_ISA{ip.isa}_{registered}"
    return f"DPUCZDX8G_ISA{ip.isa}_B{spec.peak_ops_per_cycle}_{fingerprint(spec):016X}"


@dataclass(frozen=True)
class ArchJson:
    fingerprint: int
    target: str

    @property
    def fingerprint_hex(self) -> str:
        return f"0x{self.fingerprint:x}"

    def file_text(self) -> str:
        """arch.json as the IP writes it at synthesis: `{"fingerprint":"0x..."}`."""
        return json.dumps({"fingerprint": self.fingerprint_hex}) + "\n"


def arch_json(spec: DpuSpec) -> ArchJson:
    return ArchJson(fingerprint(spec), target_name(spec))


def decode_fingerprint(value: int) -> dict[str, Any]:
    """Fields of a DPUCZDX8G fingerprint, as the VART target factory decodes them (docs/hardware.md §1.3-1.4)."""
    dpu_type, isa, code = value >> 56, (value >> 48) & 0xFF, value & ((1 << 48) - 1)
    if dpu_type != DPU_TYPE_DPUCZDX8G:
        raise ValueError(f"fingerprint 0x{value:x} is not a DPUCZDX8G fingerprint (type {dpu_type})")
    out: dict[str, Any] = {
        "isa": isa,
        "arch_code": code & 0xF,
        "img_bank_groups": (code >> 24) & 0x3,
        "channel_augmentation": bool(code >> 26 & 1),
        "conv_leakyrelu": bool(code >> 28 & 1),
    }
    if isa == 0:
        out.update(
            pool_parallel=(code >> 8) & 0xF,
            dw_parallel=(code >> 12) & 0xF,
            elew_parallel=(code >> 16) & 0xF,
            conv_relu6=bool(code >> 29 & 1),
            avg_pool=bool(code >> 30 & 1),
            dw_relu6=bool(code >> 31 & 1),
            elew_mult=bool(code >> 36 & 1),
            max_reduce=bool(code >> 37 & 1),
        )
    else:
        out.update(
            alu_parallel=(code >> 8) & 0xF,
            alu_leakyrelu=bool(code >> 29 & 1),
            save_argmax=bool(code >> 30 & 1),
            conv_write_parallel=1 << ((code >> 32) & 0x3),
            alu_write_parallel=1 << ((code >> 34) & 0x3),
        )
    return out
