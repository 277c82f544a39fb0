"""Enumeration of every legal DPU configuration for a board, with resources and fit.

Candidate values come from the field table (`config.FIELDS`); values a rule rejects on its own
(UltraRAM counts that are not a multiple of a bank's UltraRAMs, options an IP version fixes) are
skipped before the product is formed, and every remaining combination still goes through
`check_config`. Fields the resource model does not depend on (ALU LeakyReLU, argmax, clock gating)
reuse the estimate of their resource-relevant part.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from explorer.hardware.config import DpuConfig, check_config, defaults_for, per_bank_uram, resolve
from explorer.hardware.database import Board, HwDatabase, load_database
from explorer.hardware.resources import FitReport, ResourceEstimate, check_fit, estimate_resources

BOOLS = (False, True)


@dataclass(frozen=True, slots=True)
class SpacePoint:
    config: DpuConfig
    estimate: ResourceEstimate
    fit: FitReport
    fits: bool


@dataclass(frozen=True)
class SpaceCount:
    ip_version: str
    legal: int
    fits: int


def ip_versions_for(board: Board, db: HwDatabase) -> list[str]:
    return [v for v, ip in db.ip.ip_versions.items() if board.family in ip.families]


def enumerate_space(
    board: Board,
    ip_version: str,
    *,
    clock_mhz: float | None = None,
    ceilings: Mapping[str, float] | None = None,
    archs: Sequence[str] | None = None,
    db: HwDatabase | None = None,
) -> Iterator[SpacePoint]:
    """Every legal configuration of `ip_version` on `board` (optionally only some archs), with resources and fit."""
    db = db or load_database()
    ip = db.ip.ip_versions[ip_version]
    base = defaults_for(board, ip_version, db)
    clock = base["clock_mhz"] if clock_mhz is None else clock_mhz
    device = board.device
    v4 = ip.is_v4
    fixed_on = (True,) if v4 else BOOLS
    for arch in db.ip.architectures.values():
        if archs is not None and arch.name not in archs:
            continue
        alu_choices = tuple(a for a in db.ip.alu_parallel_choices if a <= arch.pp) if v4 else (0,)
        per_bank = per_bank_uram(arch)
        for cores, ram, dsp, dw, avg, elew, sfm, aug, relu, alu in itertools.product(
            range(db.ip.cores_range[0], db.ip.cores_range[1] + 1),
            ("low", "high"),
            ("low", "high"),
            fixed_on,
            fixed_on,
            fixed_on,
            BOOLS,
            BOOLS,
            ("relu_relu6", "relu_leakyrelu_relu6"),
            alu_choices,
        ):
            probe = DpuConfig(
                arch=arch.name,
                cores=cores,
                ram_usage=ram,
                dsp_usage=dsp,
                depthwise=dw,
                avg_pool=avg,
                elew_mult=elew,
                softmax=sfm,
                channel_augmentation=aug,
                relu_type=relu,
                alu_parallel=alu,
                save_argmax=False,
                dsp_cascade=base["dsp_cascade"],
                clock_mhz=clock,
                ip_version=ip_version,
            )
            top = resolve(probe, db).uram_replaceable_banks * per_bank if device.uram else 0
            probe_fields = probe.to_dict()
            for uram in range(0, top + 1, per_bank):
                resource_fields = {**probe_fields, "uram_per_core": uram}
                resource_cfg = DpuConfig(**resource_fields)
                estimate: ResourceEstimate | None = None
                fit: FitReport | None = None
                fits = False
                for alu_leaky, argmax, gating in itertools.product(
                    BOOLS if v4 else (False,),
                    BOOLS if ip.save_argmax else (False,),
                    BOOLS,
                ):
                    cfg = DpuConfig(
                        **{**resource_fields, "alu_leakyrelu": alu_leaky, "save_argmax": argmax, "clock_gating": gating}
                    )
                    if check_config(cfg, device, db):
                        continue
                    if estimate is None or fit is None:
                        estimate = estimate_resources(resolve(resource_cfg, db))
                        fit = check_fit(estimate.total, device, ceilings)
                        fits = fit.fits
                    yield SpacePoint(cfg, estimate, fit, fits)


def count_space(
    board: Board,
    *,
    ip_version: str | None = None,
    ceilings: Mapping[str, float] | None = None,
    db: HwDatabase | None = None,
) -> list[SpaceCount]:
    db = db or load_database()
    versions = [ip_version] if ip_version else ip_versions_for(board, db)
    out = []
    for version in versions:
        legal = fits = 0
        for point in enumerate_space(board, version, ceilings=ceilings, db=db):
            legal += 1
            fits += point.fits
        out.append(SpaceCount(version, legal, fits))
    return out
