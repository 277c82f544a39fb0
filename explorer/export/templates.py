"""Rendering of the Jinja2 templates in tcl/ (StrictUndefined: a missing value is an error, never empty)."""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from explorer import __version__
from explorer.datafiles import data_path
from explorer.hardware.config import DpuConfig, bank_counts, per_bank_uram
from explorer.hardware.database import Board, load_database


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_path("tcl"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def uram_banks(config: DpuConfig) -> dict[str, int]:
    """How many image / weight / bias banks UltraRAM replaces (weights first, then bias, then image)."""
    db = load_database()
    arch = db.ip.architectures[config.arch]
    img, wgt, bias = bank_counts(config, arch, db.ip.ip_versions[config.ip_version])
    banks = config.uram_per_core // per_bank_uram(arch)
    u_wgt = min(banks, wgt)
    u_bias = min(banks - u_wgt, bias)
    return {"img": min(banks - u_wgt - u_bias, img), "wgt": u_wgt, "bias": u_bias}


def render_dpu_conf(config: DpuConfig, board: Board) -> str:
    ip = load_database().ip.ip_versions[config.ip_version]
    return render(
        "dpu_conf.vh.j2",
        cfg=config.to_dict(),
        v4=ip.is_v4,
        uram=uram_banks(config),
        board=board.name,
        part=board.part,
        family=board.family,
    )


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(version=__version__, **values)
