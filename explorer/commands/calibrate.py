"""`explore calibrate`: fit the latency model's board-level parameters to measurements of one board."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from explorer.commands.common import add_board_option, print_json
from explorer.errors import ExplorerError
from explorer.tables import format_table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "calibrate",
        help="fit the latency model to measurements of one board (a profile for estimate and studies)",
        description="Fit the latency model's board-level parameters (DDR and port efficiency, per-layer overhead, "
        "host cost per runner call and per element, Arm speed) to measured rows, by least squares regularised "
        "toward the shipped fit. Prints each row's error before, after and left out of the fit.",
    )
    add_board_option(p)
    p.add_argument(
        "--measurements",
        required=True,
        action="append",
        metavar="FILE.csv",
        help="measurements: model, fps or latency_ms, threads, DpuConfig fields, ... (README: calibrate to your board); "
        "repeat for several files",
    )
    p.add_argument("-o", "--output", required=True, help="write the profile (YAML) here")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_calibrate)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from explorer.hardware.database import load_database
    from explorer.perf.calibrate import PARAMETERS, fit_profile, write_profile
    from explorer.perf.measurements import read_measurements

    db = load_database()
    board = db.board(args.board)
    rows = [row for path in args.measurements for row in read_measurements(path)]
    output = Path(args.output)
    if output.is_dir():
        raise ExplorerError(f"-o {output}: a folder; name the profile file, e.g. {output / 'profile.yaml'}")
    profile = fit_profile(board, rows, db)
    write_profile(profile, output)
    if args.json:
        print_json({**profile.to_dict(), "written": str(output)})
        return 0
    print(f"{len(rows)} measurement(s) on {board.name}; latency model before (shipped fit) and after this profile")
    table = [
        [
            r.where,
            r.model,
            r.metric,
            f"{r.measured:.4g}",
            f"{r.before:.4g}",
            _percent(r.error(r.before)),
            f"{r.after:.4g}",
            _percent(r.error(r.after)),
            _percent(r.error(r.leave_one_out)),
        ]
        for r in profile.rows
    ]
    header = ["row", "model", "metric", "measured", "before", "error", "after", "error", "left out"]
    print(format_table(header, table, [False, False, False, True, True, True, True, True, True]))
    medians = profile.medians()
    print("median |error|: " + ", ".join(f"{k.replace('_', ' ')} {_percent(v).lstrip('+')}" for k, v in medians.items()))
    if medians["leave_one_out"] is not None and medians["before"] is not None and medians["leave_one_out"] >= medians["before"]:
        print(
            "note: left out of the fit, the rows are predicted no better than by the shipped fit: their errors are "
            "not one board-level offset (check what each row timed: pre/post-processing, threads, runtime)"
        )
    print("parameters (shipped -> profile):")
    for name, meaning in PARAMETERS.items():
        print(f"  {name:28s} {profile.shipped[name]:10.4g} -> {profile.values[name]:10.4g}   {meaning}")
    shown = shlex.quote(str(output))
    print(f"wrote {output}; use it with `explore estimate ... --calibration {shown}` or `estimator: {{calibration: {shown}}}`")
    return 0
