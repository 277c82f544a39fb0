"""`explore hw ...`: devices, boards, resources, arch-json, space."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from explorer.commands.common import (
    add_board_option,
    add_dpu_options,
    dpu_config_from_args,
    fit_hint,
    json_number,
    parse_ceilings,
    print_json,
)
from explorer.errors import ExplorerError
from explorer.hardware.config import resolve
from explorer.hardware.database import RESOURCE_KINDS, load_database
from explorer.hardware.fingerprint import arch_json
from explorer.hardware.legal_space import count_space
from explorer.hardware.resources import check_fit, estimate_resources, peak_gops, validate_ceilings
from explorer.tables import format_table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    hw = sub.add_parser("hw", help="hardware database, DPU resources and arch.json")
    hw_sub = hw.add_subparsers(dest="hw_command", required=True, metavar="COMMAND")

    p = hw_sub.add_parser("devices", help="list the known devices and their PL capacities")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_devices)

    p = hw_sub.add_parser("boards", help="list the known boards")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_boards)

    p = hw_sub.add_parser("resources", help="estimate the resources of a DPU configuration and check the fit")
    add_board_option(p)
    add_dpu_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_resources)

    p = hw_sub.add_parser("arch-json", help="write the arch.json (fingerprint) of a DPU configuration")
    add_board_option(p)
    add_dpu_options(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write arch.json here")
    p.add_argument("--json", action="store_true", help="print {fingerprint, target} as JSON")
    p.set_defaults(func=cmd_arch_json)

    p = hw_sub.add_parser("space", help="count the legal DPU configurations of a board and how many fit")
    add_board_option(p)
    p.add_argument("--ip-version", help="only this IP version (default: every version the board's family supports)")
    p.add_argument(
        "--ceiling", action="append", default=[], metavar="KIND=FRACTION", help="utilisation ceiling, as in `hw resources`"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_space)


def _mark(verified: bool) -> str:
    return "yes" if verified else "UNVERIFIED"


def cmd_devices(args: argparse.Namespace) -> int:
    db = load_database()
    if args.json:
        print_json(
            [
                {
                    "name": d.name,
                    "family": d.family,
                    "lut": d.lut,
                    "ff": d.ff,
                    "bram36": d.bram36,
                    "uram": d.uram,
                    "dsp": d.dsp,
                    "verified": d.verified,
                    "note": d.note,
                }
                for d in db.devices.values()
            ]
        )
        return 0
    rows = [[d.name, d.family, d.lut, d.ff, d.bram36, d.uram, d.dsp, _mark(d.verified)] for d in db.devices.values()]
    print(
        format_table(
            ["device", "family", "LUT", "FF", "BRAM36", "URAM", "DSP", "verified"],
            rows,
            [False, False, True, True, True, True, True, False],
        )
    )
    return 0


def cmd_boards(args: argparse.Namespace) -> int:
    db = load_database()
    if args.json:
        print_json(
            [
                {
                    "name": b.name,
                    "device": b.device.name,
                    "part": b.part,
                    "board_part": b.board_part,
                    "ps_type": b.ps_type,
                    "cpu": {"kind": b.cpu.kind, "cores": b.cpu.cores, "clock_mhz": b.cpu.clock_mhz},
                    "ddr": {
                        "kind": b.ddr.kind,
                        "bus_bits": b.ddr.bus_bits,
                        "mt_per_s": b.ddr.mt_per_s,
                        "peak_gbps": round(b.ddr.peak_gbps, 3),
                    },
                    "dpu_clock_mhz": b.dpu_clock_mhz,
                    "dpu_pynq": dict(b.dpu_pynq),
                    "unverified": dict(b.unverified),
                }
                for b in db.boards.values()
            ]
        )
        return 0
    rows = []
    for b in db.boards.values():
        unverified = set(b.unverified)

        def star(key: str) -> str:
            return "*" if key in unverified else ""  # noqa: B023 (used within this iteration only)

        rows.append(
            [
                b.name,
                b.device.name,
                b.part,
                f"{b.cpu.kind} x{b.cpu.cores} @ {b.cpu.clock_mhz:g} MHz{star('cpu')}",
                f"{b.ddr.kind} {b.ddr.bus_bits}-bit {b.ddr.mt_per_s:g} MT/s = {b.ddr.peak_gbps:.1f} GB/s{star('ddr')}",
                f"{b.dpu_clock_mhz:g}{star('dpu_clock_mhz')}",
                b.dpu_pynq.get("arch", "-"),
            ]
        )
    print(format_table(["board", "device", "part", "CPU", "DDR (peak)", "DPU MHz", "DPU-PYNQ"], rows))
    print("\n* UNVERIFIED: no primary source confirmed this value (see `explore hw boards --json`, field `unverified`).")
    return 0


def resources_payload(args: argparse.Namespace) -> dict[str, Any]:
    db = load_database()
    board = db.board(args.board)
    config = dpu_config_from_args(args, board, db)
    ceilings = validate_ceilings(parse_ceilings(args.ceiling))
    spec = resolve(config, db)
    estimate = estimate_resources(spec)
    fit = check_fit(estimate.total, board.device, ceilings)
    total = estimate.total
    return {
        "board": board.name,
        "device": board.device.name,
        "config": config.to_dict(),
        **{kind: json_number(total.get(kind)) for kind in RESOURCE_KINDS},
        "peak_gops": json_number(round(peak_gops(spec), 3)),
        "fits": fit.fits,
        # A resource the device does not have (URAM on most parts) has no headroom to report.
        "headroom": {kind: (json_number(round(r.headroom, 6)) if r.available else None) for kind, r in fit.resources.items()},
        "utilization": {kind: json_number(round(r.utilization, 6)) for kind, r in fit.resources.items()},
        "ceilings": ceilings,
        "available": {kind: r.available for kind, r in fit.resources.items()},
        "breakdown": {
            "per_core": estimate.per_core.to_dict(),
            "cores": estimate.cores,
            "softmax": estimate.softmax.to_dict(),
            "platform": estimate.platform.to_dict(),
        },
        "source": estimate.source,
        "hint": fit_hint(args, board, fit.fits),
        "device_capacity_verified": board.device.verified,
        "notes": list(estimate.notes)
        + ([] if board.device.verified else [f"{board.device.name} capacities: {board.device.note}"]),
    }


def cmd_resources(args: argparse.Namespace) -> int:
    payload = resources_payload(args)
    if args.json:
        print_json(payload)
        return 0
    cfg, br = payload["config"], payload["breakdown"]
    design = f"{cfg['arch']} x {cfg['cores']} @ {cfg['clock_mhz']:g} MHz"
    print(f"{payload['board']} ({payload['device']}), DPU IP {cfg['ip_version']}: {design}")
    rows = []
    for kind in RESOURCE_KINDS:
        util = payload["utilization"][kind]
        head = payload["headroom"][kind]
        rows.append(
            [
                kind.upper() if kind != "bram36" else "BRAM36",
                br["per_core"][kind],
                br["softmax"][kind],
                br["platform"][kind],
                payload[kind],
                payload["available"][kind],
                "-" if util is None else f"{util:.1%}",
                f"{payload['ceilings'][kind]:.0%}",
                "-" if head is None else f"{head:+.1%}",
            ]
        )
    print(
        format_table(
            ["resource", "per core", "softmax", "platform", "total", "available", "used", "ceiling", "headroom"],
            rows,
            [False] + [True] * 8,
        )
    )
    print(f"fits under the ceilings: {'yes' if payload['fits'] else 'NO'}")
    if payload["hint"]:
        print(f"hint: {payload['hint']}")
    print(f"peak: {payload['peak_gops']:g} GOPS")
    print("source: model (estimates, not measurements)")
    for note in payload["notes"]:
        print(f"note: {note}")
    return 0


def cmd_arch_json(args: argparse.Namespace) -> int:
    db = load_database()
    board = db.board(args.board)
    config = dpu_config_from_args(args, board, db)
    spec = resolve(config, db)
    result = arch_json(spec)
    if args.output:
        out = Path(args.output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(result.file_text(), encoding="utf-8")
        except OSError as exc:
            raise ExplorerError(f"cannot write {out}: {exc}") from exc
    if args.json:
        print_json({"fingerprint": result.fingerprint_hex, "target": result.target})
    elif args.output:
        print(f"wrote {args.output}: fingerprint {result.fingerprint_hex}, target {result.target}")
    else:
        print(result.file_text(), end="")
    if not args.json and spec.ip.is_v4:
        print("note: the ISA1 (IP 4.x) bit mapping is INFERRED from the VART decoder (docs/hardware.md §1.4)")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    db = load_database()
    board = db.board(args.board)
    if args.ip_version and args.ip_version not in db.ip.ip_versions:
        raise ExplorerError(f"unknown IP version {args.ip_version!r}; choose one of {', '.join(db.ip.ip_versions)}")
    if args.ip_version and board.family not in db.ip.ip_versions[args.ip_version].families:
        raise ExplorerError(f"IP {args.ip_version} is not available for {board.name} ({board.family})")
    ceilings = validate_ceilings(parse_ceilings(args.ceiling))
    counts = count_space(board, ip_version=args.ip_version, ceilings=ceilings, db=db)
    if args.json:
        print_json(
            {
                "board": board.name,
                "device": board.device.name,
                "ceilings": ceilings,
                "source": "model",
                "ip_versions": [{"ip_version": c.ip_version, "legal": c.legal, "fits": c.fits} for c in counts],
                "legal": sum(c.legal for c in counts),
                "fits": sum(c.fits for c in counts),
            }
        )
        return 0
    rows = [[c.ip_version, c.legal, c.fits] for c in counts]
    rows.append(["all", sum(c.legal for c in counts), sum(c.fits for c in counts)])
    print(
        f"{board.name} ({board.device.name}) at {board.dpu_clock_mhz:g} MHz: legal DPU configurations and how many fit "
        "(fit: source model)"
    )
    print(format_table(["IP", "legal", "fit"], rows, [False, True, True]))
    return 0
