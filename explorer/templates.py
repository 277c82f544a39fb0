"""Rendering of the Jinja2 templates in tcl/ and deploy/ (StrictUndefined: a missing value is an error, never empty).
A base module: the hardware layer renders dpu_conf.vh with it, the export layer the Vivado scripts.

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


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(version=__version__, **values)
