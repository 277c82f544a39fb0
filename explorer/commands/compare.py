"""`explore compare`: two design points side by side, layer by layer (perf/compare.py).

  explore compare MODEL --board B [DPU flags of A] --b arch=B4096            the same model on two DPUs
  explore compare MODEL --model-b PRUNED.onnx --board B [DPU flags]          unpruned vs pruned on one DPU

Design B is design A with B's model and with `--b FIELD=VALUE` changes to A's DPU configuration.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from explorer.commands.common import add_board_option, add_dpu_options, dpu_config_from_args, print_json
from explorer.errors import ExplorerError
from explorer.hardware.config import DpuConfig, parse_dpu_config, require_legal, resolve
from explorer.hardware.database import load_database
from explorer.tables import format_table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("compare", help="two design points side by side, layer by layer: DPU time, GOPS, what pruning bought")
    p.add_argument("model", help="ONNX model of design A")
    p.add_argument("--model-b", metavar="MODEL", help="ONNX model of design B (for example the pruned one); default: A's")
    p.add_argument(
        "--b",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a DPU configuration field of design B that differs from A's (repeatable), e.g. --b arch=B512",
    )
    add_board_option(p, required=True)
    add_dpu_options(p)
    p.add_argument("--split", type=int, help="cut index of both designs (see explore estimate --list-splits)")
    p.add_argument("--threads", type=int, help="application threads (default: the board's Arm cores)")
    p.add_argument("--top", type=int, default=10, help="layers listed with the largest difference (default 10)")
    p.add_argument("--all", action="store_true", help="list every layer")
    p.add_argument("--html", metavar="FILE", help="write the per-layer plot (Plotly, offline) to FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_compare)


def _changes(items: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise ExplorerError(f"--b {item!r}: expected FIELD=VALUE, for example --b arch=B4096")
        changes[field.strip().replace("-", "_")] = yaml.safe_load(value)
    return changes


def cmd_compare(args: argparse.Namespace) -> int:
    from explorer.graph.prepare import load_graph
    from explorer.perf.compare import compare_layers, figure_html
    from explorer.perf.estimate import EstimateOptions, Estimator

    if args.top < 1:
        raise ExplorerError("--top must be at least 1")
    db = load_database()
    board = db.board(args.board)
    config_a = dpu_config_from_args(args, board, db)
    changes = _changes(args.b)
    parse_dpu_config(changes, board, source="--b", db=db)  # names a wrong field or value
    config_b = require_legal(parse_dpu_config({**config_a.to_dict(), **changes}, board, source="--b", db=db), board.device, db)
    graph_a = load_graph(args.model)
    graph_b = load_graph(args.model_b) if args.model_b else graph_a
    options = EstimateOptions(args.threads)
    designs: list[tuple[str, DpuConfig, Any]] = []
    for model, graph, config in ((args.model, graph_a, config_a), (args.model_b or args.model, graph_b, config_b)):
        if args.split is not None and not 0 <= args.split <= len(graph.layers):
            raise ExplorerError(f"--split {args.split} is outside 0..{len(graph.layers)} for {model}")
        designs.append((model, config, Estimator(graph, board, db=db).estimate(config, args.split, options)))
    (model_a, _, est_a), (model_b, _, est_b) = designs
    spec_a, spec_b = resolve(config_a, db), resolve(config_b, db)
    pairs = compare_layers(graph_a, est_a, (spec_a.arch.ocp, spec_a.arch.icp), graph_b, est_b, (spec_b.arch.ocp, spec_b.arch.icp))
    label_a = f"A: {Path(model_a).name} on {config_a.arch} x{config_a.cores} @{config_a.clock_mhz:g} MHz"
    label_b = f"B: {Path(model_b).name} on {config_b.arch} x{config_b.cores} @{config_b.clock_mhz:g} MHz"
    pruned = [p for p in pairs if p.verdict]
    summary = {
        "a": {"label": label_a, "dpu_ms": est_a.dpu_ms, "latency_ms": est_a.latency_ms, "macs": graph_a.total_macs},
        "b": {"label": label_b, "dpu_ms": est_b.dpu_ms, "latency_ms": est_b.latency_ms, "macs": graph_b.total_macs},
        "pruned_layers": len(pruned),
        "pruned_layers_shorter": sum(p.verdict == "shorter" for p in pruned),
        "source": "model",
    }
    if args.html:
        title = f"{label_a} vs {label_b} (estimates)"
        Path(args.html).write_text(figure_html(pairs, label_a, label_b, title), encoding="utf-8")
    if args.json:
        print_json({**summary, "layers": [p.to_dict() for p in pairs]})
        return 0
    print(label_a)
    print(label_b)
    print(
        f"DPU time per frame (source: model): A {est_a.dpu_ms:.3f} ms, B {est_b.dpu_ms:.3f} ms "
        f"({(est_b.dpu_ms / est_a.dpu_ms - 1) * 100 if est_a.dpu_ms else 0.0:+.1f} %); "
        f"MACs A {graph_a.total_macs:,}, B {graph_b.total_macs:,}"
    )
    if pruned:
        print(f"layers with other output channels: {len(pruned)}, of which {summary['pruned_layers_shorter']} run shorter on B")
    shown = pairs if args.all else sorted(pairs, key=lambda p: -abs(p.difference_ms))[: args.top]
    rows = [
        [
            p.name,
            p.kind,
            f"{p.time_a_ms:.4f}",
            f"{p.time_b_ms:.4f}",
            f"{p.difference_ms:+.4f}",
            f"{p.gops_a:.1f}",
            f"{p.gops_b:.1f}",
            f"{p.channels_a}->{p.channels_b}" if p.channels_a != p.channels_b else str(p.channels_a),
            p.verdict,
        ]
        for p in shown
    ]
    heading = "every layer" if args.all else f"the {len(shown)} layers with the largest difference"
    print(f"\n{heading} (times in ms, estimates):")
    print(
        format_table(
            ["layer", "kind", "A ms", "B ms", "B-A ms", "A GOPS", "B GOPS", "channels", "pruning"],
            rows,
            [False, False, True, True, True, True, True, False, False],
        )
    )
    if args.html:
        print(f"\nplot: {args.html}")
    return 0
