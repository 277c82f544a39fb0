"""`explore estimate MODEL.onnx --board B [DPU options]`: partition, per-layer times, FPS and resources."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from explorer.commands.common import (
    add_board_option,
    add_dpu_options,
    add_hard_activations_option,
    dpu_config_from_args,
    json_number,
    print_json,
)
from explorer.commands.hw import resources_payload
from explorer.errors import ExplorerError
from explorer.hardware.database import load_database
from explorer.perf import RUNTIMES
from explorer.tables import format_table

if TYPE_CHECKING:  # onnx and the latency model load when the command runs, not when the command line starts
    from explorer.graph.layers import ModelGraph
    from explorer.perf.estimate import PerfEstimate


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("estimate", help="partition a model between DPU and CPU and estimate its latency and FPS")
    p.add_argument("model", help="ONNX model file")
    add_board_option(p, required=False)
    add_dpu_options(p)
    p.add_argument("--split", type=int, help="cut index: only layers before it may run on the DPU (see --list-splits)")
    p.add_argument("--threads", type=int, help="application threads for fps_multi (default: the board's Arm cores)")
    p.add_argument("--pre-ms", type=float, default=0.0, help="per-frame pre-processing time on the Arm (ms)")
    p.add_argument("--post-ms", type=float, default=0.0, help="per-frame post-processing time on the Arm (ms)")
    p.add_argument("--cpu-precision", choices=("fp32", "int8"), default="fp32", help="precision of the CPU part")
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="[NAME=]1x3x224x224",
        help="static input shape, for models with dynamic dimensions",
    )
    add_hard_activations_option(p)
    p.add_argument(
        "--runtime",
        choices=tuple(RUNTIMES),
        default="vart",
        help="what runs the model on the board: VART (any number of DPU subgraphs) or DPU-PYNQ (exactly one)",
    )
    p.add_argument(
        "--calibration",
        metavar="PROFILE.yaml",
        help="latency parameters fitted to this board's measurements (`explore calibrate`); default: the shipped fit",
    )
    p.add_argument("--list-splits", action="store_true", help="list the cut points and the tensors crossing each")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_estimate)


def _fmt(value: float, digits: int = 2) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def estimate_payload(graph: ModelGraph, est: PerfEstimate) -> dict[str, Any]:
    part = est.partition
    return {
        **{k: json_number(v) if isinstance(v, float) else v for k, v in est.summary().items()},
        "subgraphs": [
            {
                "index": s.index,
                "device": s.device,
                "nodes": [graph.layers[i].name for i in s.layers],
                "time_ms": json_number(s.time_ms),
                "host_ms": json_number(s.host_ms),
                "inputs": list(s.inputs),
                "outputs": list(s.outputs),
                "boundary_elements": s.boundary_bytes,
            }
            for s in est.subgraphs
        ],
        "cpu_nodes": [
            {"name": graph.layers[i].name, "op_type": graph.layers[i].op_type, "reason": part.placements[i].reason}
            for i in part.cpu_layers
        ],
        "layers": [
            {
                **graph.layers[t.layer].to_dict(),
                "device": t.device,
                "time_ms": json_number(t.time_ms),
                "compute_ms": json_number(t.compute_ms),
                "memory_ms": json_number(t.memory_ms),
                "bound": t.bound,
                "gops": json_number(t.gops),
                "ddr_bytes": t.ddr_bytes,
                "note": part.placements[t.layer].reason,
            }
            for t in est.layers
        ],
    }


def _print_splits(graph: ModelGraph) -> None:
    from explorer.dpu.partition import cut_points

    rows = []
    for cut in cut_points(graph):
        before = graph.layers[cut.index - 1].name if cut.index else "(input)"
        shown = ", ".join(cut.tensors[:3]) + (f" (+{len(cut.tensors) - 3})" if len(cut.tensors) > 3 else "")
        rows.append([cut.index, before, len(cut.tensors), cut.bytes_int8, shown])
    print(
        format_table(
            ["split", "after layer", "tensors", "int8 bytes", "crossing tensors"], rows, [True, False, True, True, False]
        )
    )


def cmd_estimate(args: argparse.Namespace) -> int:
    from explorer.graph.loader import parse_input_shapes
    from explorer.graph.prepare import load_graph
    from explorer.perf.estimate import EstimateOptions, Estimator

    graph = load_graph(args.model, parse_input_shapes(args.input_shape), hard=args.hard_activations)
    if args.list_splits:
        _print_splits(graph)
        return 0
    if not args.board:
        raise ExplorerError("--board is required (see `explore hw boards`), except with --list-splits")
    if args.split is not None and not 0 <= args.split <= len(graph.layers):
        raise ExplorerError(f"--split {args.split} is outside 0..{len(graph.layers)} (see --list-splits)")
    if args.threads is not None and args.threads < 1:
        raise ExplorerError("--threads must be at least 1")
    if args.pre_ms < 0 or args.post_ms < 0:
        raise ExplorerError("--pre-ms and --post-ms must not be negative")
    db = load_database()
    board = db.board(args.board)
    config = dpu_config_from_args(args, board, db)
    options = EstimateOptions(args.threads, args.pre_ms, args.post_ms, args.cpu_precision, args.runtime)
    params, errors, calibration = None, None, "shipped fit"
    if args.calibration:
        from explorer.perf.calibrate import read_profile

        profile = read_profile(args.calibration)
        params, errors, calibration = profile.params(board), profile.error_model(board), profile.label
    est = Estimator(graph, board, params, db=db, errors=errors).estimate(config, args.split, options)
    payload = estimate_payload(graph, est)
    payload["resources"] = resources_payload(args)
    payload["model"] = {
        "path": args.model,
        "layers": len(graph.layers),
        "gop_per_frame": graph.total_ops / 1e9,
        "weight_bytes": graph.total_weight_bytes,
    }
    payload["split"] = args.split
    payload["calibration"] = calibration
    if args.json:
        print_json(payload)
        return 0
    print(
        f"model {args.model}: {len(graph.layers)} layers, {graph.total_ops / 1e9:.3f} GOP/frame, "
        f"{graph.total_weight_bytes / 1e6:.2f} MB int8 weights"
    )
    print(
        f"board {board.name} ({board.device.name}), DPU IP {config.ip_version} {config.arch} x {config.cores} "
        f"@ {config.clock_mhz:g} MHz, split {'none' if args.split is None else args.split}"
    )
    print(f"\npartition: {len(est.subgraphs)} subgraph(s), {est.dpu_subgraphs} on the DPU (runtime {est.runtime})")
    print(
        format_table(
            ["#", "device", "layers", "time ms", "host ms", "inputs", "outputs"],
            [
                [
                    s.index,
                    s.device,
                    len(s.layers),
                    _fmt(s.time_ms, 3),
                    _fmt(s.host_ms, 3),
                    ", ".join(s.inputs[:2]),
                    ", ".join(s.outputs[:2]),
                ]
                for s in est.subgraphs
            ],
            [True, False, True, True, True, False, False],
        )
    )
    if payload["cpu_nodes"]:
        print("\nlayers on the CPU and why:")
        for node in payload["cpu_nodes"]:
            print(f"  {node['name']} ({node['op_type']}): {node['reason']}")
    print("\nper layer (source: model):")
    rows = [
        [t.layer, graph.layers[t.layer].name, graph.layers[t.layer].kind, t.device, _fmt(t.time_ms, 4), _fmt(t.gops, 1), t.bound]
        for t in est.layers
    ]
    print(
        format_table(
            ["#", "layer", "kind", "device", "time ms", "GOPS", "bound"], rows, [True, False, False, False, True, True, False]
        )
    )
    print(f"\nlatency parameters: {calibration}")
    print(
        f"totals (source: model, estimates): latency {_fmt(est.latency_ms)} ms = DPU {_fmt(est.dpu_ms)} + host "
        f"{_fmt(est.host_ms)} + CPU {_fmt(est.cpu_ms)} + pre/post {_fmt(est.pre_ms + est.post_ms)}"
    )
    print(
        f"  fps_single {_fmt(est.fps_single, 1)}, fps_multi {_fmt(est.fps_multi, 1)} ({est.threads} threads, bound: "
        f"{est.multi_bound}), DPU {_fmt(est.dpu_gops, 1)} GOPS = {est.dpu_utilization:.0%} of one core's peak"
    )
    if est.intervals:
        shown = ", ".join(f"{k} {_fmt(lo, 1)}-{_fmt(hi, 1)}" for k, (lo, hi) in est.intervals.bounds.items())
        print(f"  {est.intervals.level:.0%} intervals: {shown} ({est.intervals.basis})")
    res = payload["resources"]
    print(
        f"resources (source: model): LUT {res['lut']}, FF {res['ff']}, BRAM36 {res['bram36']}, URAM {res['uram']}, "
        f"DSP {res['dsp']}; fits {board.device.name}: {'yes' if res['fits'] else 'NO'}"
    )
    if res["hint"]:
        print(f"hint: {res['hint']}")
    if est.runtime_problem:
        print(f"infeasible: {est.runtime_problem}")
    return 0
