"""The `explore` command: a thin layer over the library. `main(argv) -> int` is the only entry point,
and the one place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from explorer import __version__
from explorer.commands import calibrate, compare, compress, estimate, export, hw, study
from explorer.errors import ExplorerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explore",
        description="Design-space explorer for the Zynq DPU (DPUCZDX8G): DPU configuration, pruning and CPU/DPU split.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hw.register(sub)
    estimate.register(sub)
    compare.register(sub)
    calibrate.register(sub)
    compress.register(sub)
    study.register(sub)
    export.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"interrupted{f' by {exc}' if str(exc) else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a path or device the user named: say which and why, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; check the path and its permissions", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory; use less data (a smaller COUNT or fewer samples) or a smaller model", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())
