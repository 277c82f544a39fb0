"""`dpu_conf.vh`: the DPU configuration file of the Vitis flow (DPU-PYNQ, DPU-TRD), one per design point."""

from __future__ import annotations

from explorer.hardware.config import DpuSpec
from explorer.hardware.database import Board
from explorer.templates import render


def render_dpu_conf(spec: DpuSpec, board: Board) -> str:
    """dpu_conf.vh of `spec` for `board` (tcl/dpu_conf.vh.j2; the UltraRAM split is `DpuSpec.uram_banks`)."""
    moved = spec.uram_banks
    return render(
        "dpu_conf.vh.j2",
        cfg=spec.config.to_dict(),
        v4=spec.ip.is_v4,
        uram={"img": moved.img, "wgt": moved.wgt, "bias": moved.bias},
        board=board.name,
        part=board.part,
        family=board.family,
    )
