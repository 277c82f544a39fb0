"""`explore compress`: APoZ pruning and DPU int8 quantization of a model, with measured accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from explorer.commands.common import add_dpu_options, add_hard_activations_option, dpu_config_from_args, print_json
from explorer.compress import CALIBRATION_METHODS, QUANTIZE_MODES, RECOVERY, SELECTIONS, default_cache_dir
from explorer.compress.finetune import DEFAULT_STEPS, FinetuneHook, resolve_spec
from explorer.errors import ExplorerError
from explorer.hooks import hook_file
from explorer.tables import format_table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("compress", help="prune (APoZ) and quantize (DPU int8) a model and measure its accuracy")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--data", required=True, help="evaluation data: file.npz, a folder, or pose-synth:COUNT:SEED")
    p.add_argument("--calib-data", help="calibration data for APoZ and quantization (default: the first 100 samples of --data)")
    p.add_argument("--evaluator", default="pose", help="pose, classification, or module:function")
    p.add_argument("--apoz", action="store_true", help="only print the APoZ per layer group")
    p.add_argument(
        "--prune", default="", metavar="GROUP=THRESHOLD,...", help="APoZ threshold per layer group (g0, g1, ... or all)"
    )
    p.add_argument(
        "--prune-selection",
        choices=SELECTIONS,
        default=SELECTIONS[0],
        help="which channels a layer group loses (APoZ says how many): those the least-squares refit of the layers "
        "reading them can best do without (default), or the most often zero (apoz)",
    )
    p.add_argument("--prune-multiple", type=int, default=4, help="round remaining channels to a multiple of this (default 4)")
    p.add_argument(
        "--abstain",
        action="store_true",
        help="leave a layer group whole where pruning would not change its output-channel passes ceil(channels / OCP) "
        "on the DPU (--board and the DPU flags; default a full-featured ZU+ DPU)",
    )
    p.add_argument("--prune-groups", type=int, default=4, help="number of layer groups of neighbouring convolutions")
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default="dpu", help="int8 for the DPU part, everything, or nothing")
    p.add_argument("--calibration", choices=CALIBRATION_METHODS, default="minmax", help="activation calibration method")
    p.add_argument("--split", type=int, help="cut index: layers from it on run on the CPU")
    p.add_argument(
        "--recovery",
        choices=RECOVERY,
        default="reconstruct",
        help="after pruning: refit the layers that read the pruned channels by least squares on the calibration "
        "data (default), or none",
    )
    p.add_argument(
        "--prune-rounds",
        type=int,
        default=1,
        metavar="K",
        help="iterative pruning: K rounds of prune, recover and measure the APoZ again, the thresholds going from mild "
        "to the given ones (default 1); the output lists each round",
    )
    p.add_argument(
        "--finetune",
        metavar="SPEC",
        help="after pruning and recovery, fine-tune with this function (module:function or path/to/file.py:function, "
        "e.g. examples/pose/finetune.py:finetune); it gets the pruned model's path, the calibration data and the steps",
    )
    p.add_argument(
        "--finetune-steps", type=int, default=DEFAULT_STEPS, help=f"step budget of --finetune (default {DEFAULT_STEPS})"
    )
    p.add_argument("--board", help="board whose DPU configuration decides the partition (default: a full-featured ZU+ DPU)")
    add_dpu_options(p)
    add_hard_activations_option(p)
    p.add_argument("-o", "--output", help="write the compressed model (batch 1, QDQ) here")
    p.add_argument("--cache-dir", default=None, help=f"accuracy cache (default {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the accuracy cache")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_compress)


def _quantile(group: dict[str, Any], q: float) -> float:
    quantiles = group.get("apoz_quantiles")
    return float(quantiles.get(q, 0.0)) if isinstance(quantiles, dict) else 0.0


def finetune_hook(args: argparse.Namespace) -> FinetuneHook | None:
    """`--finetune SPEC --finetune-steps N` (a relative file path is relative to the working directory)."""
    if args.finetune is None:
        return None
    if ":" not in args.finetune:
        raise ExplorerError(f"--finetune {args.finetune!r}: use module:function or path/to/file.py:function")
    if args.finetune_steps < 1:
        raise ExplorerError("--finetune-steps must be at least 1")
    spec = resolve_spec(args.finetune, Path.cwd())
    file = hook_file(spec)
    if file is not None and not file.is_file():
        raise ExplorerError(f"--finetune {args.finetune!r}: no such file {file}")
    return FinetuneHook(spec, args.finetune_steps)


def cmd_compress(args: argparse.Namespace) -> int:
    import onnx  # heavy: imported when the command runs, not when the command line starts

    from explorer.compress.context import CompressionContext, CompressOptions
    from explorer.compress.prune import parse_thresholds
    from explorer.data.loaders import load_data
    from explorer.evaluators.builtin import load_evaluator
    from explorer.graph.loader import graph_inputs, read_model
    from explorer.hardware.config import DpuConfig, resolve
    from explorer.hardware.database import load_database

    if args.prune_rounds < 1:
        raise ExplorerError("--prune-rounds must be at least 1")
    if args.prune_multiple < 1 or args.prune_groups < 1:
        raise ExplorerError("--prune-multiple and --prune-groups must be at least 1")
    names = [i.name for i in graph_inputs(read_model(args.model))]
    data = load_data(args.data, names)
    calibration = load_data(args.calib_data, names) if args.calib_data else data.head(100)
    ctx = CompressionContext(
        args.model,
        data,
        calibration,
        load_evaluator(args.evaluator),
        Path(args.cache_dir) if args.cache_dir else None,
        use_cache=not args.no_cache,
        hard=args.hard_activations,
    )
    if args.apoz:
        report = ctx.apoz(args.prune_groups)
        summary = report.group_summary()
        if args.json:
            print_json(
                {
                    "groups": summary,
                    "blocked": [{"convolution": c, "reason": r} for c, r in report.blocked],
                    "source": "measured: onnxruntime on this machine",
                }
            )
            return 0
        print(f"APoZ (fraction of zeros after the activation) on {len(calibration)} calibration samples (measured):")
        print(
            format_table(
                ["group", "convs", "channels", "mean", "median", "p90", "max"],
                [
                    [
                        g["group"],
                        g["convolutions"],
                        g["channels"],
                        f"{g['apoz_mean']:.3f}",
                        f"{_quantile(g, 0.5):.3f}",
                        f"{_quantile(g, 0.9):.3f}",
                        f"{g['apoz_max']:.3f}",
                    ]
                    for g in summary
                ],
                [False] + [True] * 6,
            )
        )
        if report.blocked:
            print(f"\n{len(report.blocked)} convolution(s) are not prunable, e.g.:")
            for conv, reason in report.blocked[:8]:
                print(f"  {conv}: {reason}")
        return 0
    config = DpuConfig()
    if args.board:
        db = load_database()
        config = dpu_config_from_args(args, db.board(args.board), db)
    thresholds = parse_thresholds(args.prune, ctx.apoz(args.prune_groups).groups) if args.prune else {}
    options = CompressOptions(
        thresholds,
        args.prune_multiple,
        args.prune_groups,
        args.quantize,
        args.calibration,
        args.split,
        args.recovery,
        resolve(config).arch.ocp if args.abstain else 0,
        finetune_hook(args) if thresholds else None,
        args.prune_rounds,
        args.prune_selection,
    )
    result = ctx.measure_accuracy(options, config)
    if args.output:
        onnx.save(ctx.export(options, config), args.output)
    payload: dict[str, Any] = {
        **result.to_dict(),
        "options": {
            **options.__dict__,
            "prune": dict(options.prune),
            "finetune": options.finetune.__dict__ if options.finetune else None,
        },
        "output": args.output,
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"accuracy on {len(data)} samples ({result.source}{', from the cache' if result.cached else ''}):")
    rows = [[name, f"{result.float_metrics[name]:.4f}", f"{result.metrics[name]:.4f}"] for name in result.metrics]
    print(format_table(["metric", "float", "compressed"], rows, [False, True, True]))
    print("fidelity to the float model: " + ", ".join(f"{k} {v:.4f}" for k, v in result.fidelity.items()))
    print(f"parameters {result.params_before:,} -> {result.params_after:,}; MACs {result.macs_before:,} -> {result.macs_after:,}")
    if result.dpu_arithmetic:
        print("DPU arithmetic emulated (AMD Quark's DPU simulation; docs/deployment_flow.md):")
        for line in result.dpu_arithmetic:
            print(f"  {line}")
    if result.pruned_channels:
        chosen = "how many, the refit which" if options.selection == "reconstruction" else "how many and which"
        recovered = "refitted by least squares" if options.recovery == "reconstruct" else "not recovered"
        print(
            f"pruned channels: {sum(result.pruned_channels.values())} in {len(result.pruned_channels)} convolution(s); "
            f"APoZ chose {chosen} (selection: {options.selection}); the layers reading them {recovered}"
        )
    for step in result.pruning_schedule:
        levels = ", ".join(f"{g}={t:.3f}" for g, t in sorted(step["thresholds"].items()))
        print(f"  round {step['round']}: thresholds {levels}; {step['channels_left']:,} prunable channels left")
    if args.output:
        print(f"wrote {args.output}")
    return 0
