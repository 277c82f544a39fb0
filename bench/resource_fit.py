"""Refit the IP 4.x ALU coefficients and print the resource model against every published number.

Run: python bench/resource_fit.py
"""

from __future__ import annotations

from explorer.hardware.alu_fit import fit_v4_alu
from explorer.hardware.config import DpuConfig, resolve
from explorer.hardware.database import load_database
from explorer.hardware.resources import estimate_resources


def main() -> None:
    db = load_database()
    fit = fit_v4_alu(db)
    stored = db.ip.v4
    print("IP 4.x ALU fit (least squares over PG338 4.x B4096 ALU 1/2/4/8, docs/calibration.md §4)")
    for kind in ("lut", "ff"):
        offset, lane = getattr(fit, f"{kind}_offset"), getattr(fit, f"{kind}_per_alu_lane")
        s_offset, s_lane = getattr(stored, f"{kind}_offset"), getattr(stored, f"{kind}_per_alu_lane")
        print(f"  {kind.upper():<4} offset {offset:.1f} (stored {s_offset}), per lane {lane:.3f} (stored {s_lane})")
    print(f"{'row':<32}{'resource':>9}{'published':>11}{'model':>10}{'error':>9}")
    rows: list[tuple[str, str, float, float]] = []
    for row in stored.rows:
        alu, lut, ff, bram, dsp = row.alu_parallel, row.lut, row.ff, row.bram36, row.dsp
        core = estimate_resources(resolve(DpuConfig(arch="B4096", ip_version="4.1", alu_parallel=alu), db)).per_core
        for kind, published in (("lut", lut), ("ff", ff), ("bram36", bram), ("dsp", dsp)):
            rows.append((f"PG338 4.x B4096 ALU {alu}", kind, published, core.get(kind)))
    trd = estimate_resources(resolve(DpuConfig(arch="B4096", cores=3, softmax=True, clock_mhz=325, ip_version="4.1"), db))
    for kind, published in (("lut", 164612), ("ff", 302254), ("bram36", 769), ("dsp", 2138)):
        rows.append(("ZCU102 TRD VAI 3.0, whole IP", kind, published, trd.dpu_ip.get(kind)))
    for kind, published in (("lut", 50850), ("ff", 97100), ("bram36", 255), ("dsp", 710)):
        rows.append(("ZCU102 TRD VAI 3.0, per core", kind, published, trd.per_core.get(kind)))
    for name, kind, published, model in rows:
        print(f"{name:<32}{kind:>9}{published:>11g}{model:>10g}{(model - published) / published:>+9.2%}")
    worst = max(abs(m - p) / p for _, _, p, m in rows)
    print(f"largest relative error: {worst:.2%} (target: within 3 %)")


if __name__ == "__main__":
    main()
