"""Options shared by several commands: the board, the DPU configuration flags, utilisation ceilings."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from typing import Any

from explorer.errors import ExplorerError
from explorer.fileio import load_mapping_file
from explorer.hardware.config import DpuConfig, field_specs, parse_dpu_config, require_legal
from explorer.hardware.database import Board, HwDatabase, load_database


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_board_option(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--board", required=required, help="board name, e.g. kv260, ultra96-v2, zcu102 (see `explore hw boards`)")


def add_dpu_options(parser: argparse.ArgumentParser) -> None:
    """One flag per DpuConfig field, named after it, plus --dpu FILE with the same fields."""
    group = parser.add_argument_group("DPU configuration (defaults: the board's family and the IP version)")
    group.add_argument(
        "--preset",
        choices=PRESETS,
        help="start from a published configuration of the board: dpu-pynq = its DPU-PYNQ overlay "
        "(`explore hw boards` lists them); --dpu and the flags below override it",
    )
    group.add_argument("--dpu", metavar="FILE", help="YAML/JSON file with DpuConfig fields (optionally under a `dpu:` key)")
    for spec in field_specs().values():
        text = spec.help
        if spec.choices:
            text += f" ({', '.join(str(c) for c in spec.choices)})"
        elif spec.minimum is not None:
            text += f" ({spec.minimum:g}-{spec.maximum:g})"
        if spec.kind is bool:
            group.add_argument(
                flag_name(spec.name), dest=spec.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            group.add_argument(flag_name(spec.name), dest=spec.name, default=None, metavar=spec.name.upper(), help=text)
    group.add_argument(
        "--ceiling",
        action="append",
        default=[],
        metavar="KIND=FRACTION",
        help="utilisation ceiling per resource (lut, ff, bram36, uram, dsp), e.g. --ceiling dsp=0.85; "
        "defaults lut/ff 0.80, bram36/uram 0.90, dsp 0.95",
    )


def parse_ceilings(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        for part in filter(None, item.split(",")):
            kind, sep, number = part.partition("=")
            try:
                if not sep:
                    raise ValueError
                out[kind.strip().lower()] = float(number)
            except ValueError as exc:
                raise ExplorerError(f"--ceiling {part!r}: expected KIND=FRACTION, e.g. dsp=0.85") from exc
    return out


PRESETS = ("dpu-pynq",)


def preset_config(board: Board, name: str) -> dict[str, Any]:
    """The DpuConfig fields of a board's published configuration (`dpu_pynq` in hw/boards.yaml)."""
    if name != "dpu-pynq":
        raise ExplorerError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if not board.dpu_pynq:
        raise ExplorerError(f"board {board.name} has no DPU-PYNQ configuration; give the DPU options instead")
    return {k: v for k, v in board.dpu_pynq.items() if k != "source"}


def dpu_options_given(args: argparse.Namespace) -> bool:
    return bool(args.preset or args.dpu) or any(getattr(args, name, None) is not None for name in field_specs())


def fit_hint(args: argparse.Namespace, board: Board, fits: bool) -> str | None:
    """When the IP defaults do not fit and the user chose nothing, point at the board's published design."""
    if fits or dpu_options_given(args) or not board.dpu_pynq:
        return None
    return (
        f"the IP defaults do not fit the {board.device.name}; --preset dpu-pynq starts from the board's "
        "DPU-PYNQ configuration, or see `explore hw space` for the legal ones that fit"
    )


def dpu_config_from_args(args: argparse.Namespace, board: Board, db: HwDatabase | None = None) -> DpuConfig:
    """Preset, then file values, then flags, over the board defaults; parse errors name their source."""
    db = db or load_database()
    preset: dict[str, Any] = {}
    if args.preset:
        preset = preset_config(board, args.preset)
        parse_dpu_config(preset, board, source=f"hw/boards.yaml {board.name} dpu_pynq", db=db)
    file_data: dict[str, Any] = {}
    if args.dpu:
        raw = load_mapping_file(args.dpu)
        if isinstance(raw, Mapping) and set(raw) == {"dpu"}:
            raw, path = raw["dpu"], "dpu"
        else:
            path = ""
        parse_dpu_config(raw, board, source=args.dpu, path=path, db=db)  # reports the file's own problems
        file_data = dict(raw)
    flag_data = {name: getattr(args, name) for name in field_specs(db) if getattr(args, name, None) is not None}
    parse_dpu_config(
        {flag_name(k)[2:].replace("-", "_"): v for k, v in flag_data.items()}, board, source="command-line flags", db=db
    )
    config = parse_dpu_config({**preset, **file_data, **flag_data}, board, db=db)
    return require_legal(config, board.device, db)


def json_number(value: float) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return round(value, 6) if isinstance(value, float) else value


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


HARD_HELP = (
    "convert Sigmoid to HardSigmoid and SiLU/Swish to HardSwish first, as the vendor quantizer can "
    "(DPU activations on IP 4.x); changes the numbers: the accuracy is measured on the converted model"
)


def add_hard_activations_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hard-activations", action="store_true", help=HARD_HELP)
