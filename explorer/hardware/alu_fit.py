"""Refit of the IP 4.x ALU coefficients (hw/dpu_ip.yaml `v4_alu_fit`) from their published rows.

The LUT/FF of a v4 core = v3.x core with its ALU options on + offset + per_lane * extra ALU lanes,
extra lanes = ICP * (alu_parallel - PP/2). Two coefficients per resource, least squares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.hardware.config import DpuConfig, resolve
from explorer.hardware.database import HwDatabase, load_database
from explorer.hardware.resources import v3_core_lut_ff


@dataclass(frozen=True)
class AluFit:
    lut_offset: float
    lut_per_alu_lane: float
    ff_offset: float
    ff_per_alu_lane: float
    residuals: tuple[tuple[int, float, float], ...]  # (alu_parallel, LUT residual, FF residual), published - fit


def fit_v4_alu(db: HwDatabase | None = None) -> AluFit:
    db = db or load_database()
    arch = db.ip.architectures["B4096"]
    base = DpuConfig(
        arch="B4096",
        ip_version="4.1",
        dsp_usage="high",
        ram_usage="low",
        channel_augmentation=True,
        relu_type="relu_leakyrelu_relu6",
    )
    spec = resolve(base, db)
    base_lut, base_ff = v3_core_lut_ff(spec, v4=True)
    lanes = np.array([arch.icp * (row.alu_parallel - spec.alu_parallel_default) for row in db.ip.v4.rows], dtype=float)
    design = np.column_stack([np.ones_like(lanes), lanes])
    lut = np.array([row.lut for row in db.ip.v4.rows], dtype=float) - base_lut
    ff = np.array([row.ff for row in db.ip.v4.rows], dtype=float) - base_ff
    (lut_off, lut_slope), *_ = np.linalg.lstsq(design, lut, rcond=None)
    (ff_off, ff_slope), *_ = np.linalg.lstsq(design, ff, rcond=None)
    lut_res = lut - design @ np.array([lut_off, lut_slope])
    ff_res = ff - design @ np.array([ff_off, ff_slope])
    residuals = tuple((row.alu_parallel, float(a), float(b)) for row, a, b in zip(db.ip.v4.rows, lut_res, ff_res, strict=True))
    return AluFit(float(lut_off), float(lut_slope), float(ff_off), float(ff_slope), residuals)
