"""Rendering of the Jinja2 templates in tcl/ and deploy/ (StrictUndefined: a missing value is an error, never empty).

Every value a user can choose (project name, paths) reaches Tcl through the `tcl` filter, which makes
it one literal Tcl word: no command substitution, no variable substitution, no word splitting.
"""

from __future__ import annotations

import functools
import re
import shlex
from typing import Any

import jinja2

from explorer import __version__
from explorer.datafiles import data_path
from explorer.hardware.config import DpuConfig, bank_counts, per_bank_uram
from explorer.hardware.database import Board, load_database

_TCL_BARE = re.compile(r"[A-Za-z0-9_.:/+@%,=-]+")
_TCL_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "[": "\\[", "]": "\\]", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def tcl_word(value: object) -> str:
    """`value` as one literal Tcl word (bare when it is safe, else double-quoted with every special escaped)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if _TCL_BARE.fullmatch(text):
        return text
    out = []
    for ch in text:
        if ch in _TCL_ESCAPES:
            out.append(_TCL_ESCAPES[ch])
        elif ord(ch) < 32 or ch in "{}":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def shell_word(value: object) -> str:
    """`value` as one literal POSIX shell word."""
    return shlex.quote(str(value))


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(data_path("tcl")), str(data_path("deploy"))]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tcl"] = tcl_word
    env.filters["sh"] = shell_word
    return env


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
