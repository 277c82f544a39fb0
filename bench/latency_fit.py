"""The latency model against every published number of docs/calibration.md §2-3, §5, PG338 Tables 13-14 and seed 002.

Run:   python bench/latency_fit.py            print predicted / published / error per row, and medians
       python bench/latency_fit.py --refit    also refit the `fitted` parameters (least squares on log
                                              error over the rows marked fit) and print them
       python bench/latency_fit.py --refit --write   and write them into hw/latency_model.yaml
       python bench/latency_fit.py --uncertainty      also print the spreads of hw/latency_model.yaml `uncertainty`
                                                      (refits once per fitted network: about 3 minutes)
Rows marked "check" are never used for fitting: they show how the model generalises.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference/ (networks, published rows) sits beside bench/

from explorer.datafiles import data_path
from explorer.perf.params import CPU_FITTED, DPU_FITTED, HOST_FITTED, PARAMS_FILE, LatencyParams, load_params, write_fitted
from explorer.perf.uncertainty import Z80
from reference.published import (
    ROWS,
    SCALING,
    SEED002,
    Row,
    ScalingRow,
    errors,
    log_residuals,
    reference_graph,
    scaling_ratio,
    seed002_times,
)

DPU_KEYS = (*DPU_FITTED, *HOST_FITTED)
DPU_BOUNDS = dict(
    zip(DPU_KEYS, zip((0, 0.1, 0.1, 0, 0, 0.01, 0), (60000, 1.0, 1.0, 1.0, 1.0, 2.0, 50.0), strict=True), strict=True)
)
# Parameters held toward an unfitted estimate: (value, standard deviation of log(fitted / value)); see
# docs/latency_model.md. The runner call's Arm time (0.15 ms at 1 GHz): the published rows barely tell it apart
# from the DPU time. The DDR's efficiency (0.8, what DDR controllers sustain on mixed streams, an ASSUMPTION):
# the rows alone tell it poorly from the ports' efficiency (before `traffic_share` they admitted DDR and ports
# at 0.80 / 0.84 or both at 1); no controller reaches its peak.
PRIORS = {
    "runner_overhead_ms_at_1ghz": (0.15, 0.3),
    "ddr_efficiency": (0.8, 0.2),
}
A53_KEYS = CPU_FITTED["cortex-a53"]
A53_BOUNDS = ((0.5, 0.02, 0.1, 0, 0.1), (10, 1.0, 20, 100, 1.0))  # a fixed cost above 100 us per operator is not physical
A9_KEYS = CPU_FITTED["cortex-a9"]
A9_BOUNDS = ((0.1, 0.1), (2.0, 1.0))


def _with_dpu(params: LatencyParams, x: np.ndarray, keys: tuple[str, ...] = DPU_KEYS) -> LatencyParams:
    return params.with_values(**dict(zip(keys, map(float, x), strict=True)))


def _with_cpu(params: LatencyParams, kind: str, keys: tuple[str, ...], x: np.ndarray) -> LatencyParams:
    cpu = dict(params.cpu)
    cpu[kind] = replace(cpu[kind], **dict(zip(keys, map(float, x), strict=True)))
    if kind == "cortex-a53":  # the A9 shares the A53's per-clock structure except its own two parameters
        cpu["cortex-a9"] = replace(
            cpu["cortex-a53"],
            relative_speed=cpu["cortex-a9"].relative_speed,
            thread_efficiency=cpu["cortex-a9"].thread_efficiency,
        )
    return replace(params, cpu=cpu)


def _fit(  # type: ignore[no-untyped-def]
    rows: tuple[Row, ...],
    start: np.ndarray,
    bounds: tuple[tuple[float, ...], tuple[float, ...]],
    make,
    scaling: tuple[ScalingRow, ...] = (),
    prior=None,
) -> np.ndarray:
    """Least squares on log error over `rows` and the architecture ratios of `scaling`."""

    def residuals(x: np.ndarray) -> list[float]:
        q = make(x)
        out = log_residuals(errors(rows, q)) + [math.log(scaling_ratio(c, q) / c.published_ratio) for c in scaling]
        return out + (prior(x) if prior else [])

    result = least_squares(residuals, np.clip(start, bounds[0], bounds[1]), bounds=bounds, x_scale="jac")
    return np.asarray(result.x)


def refit(params: LatencyParams, rows: tuple[Row, ...] = ROWS, scaling_rows: tuple[ScalingRow, ...] = SCALING) -> LatencyParams:
    """The fitted parameters refitted to the rows of `rows` marked fit (all published rows by default) and the
    fitted architecture ratios of `scaling_rows`."""
    fit_rows = [r for r in rows if r.fitted]
    a53 = tuple(r for r in fit_rows if r.metric == "cpu_ms" and r.cpu and r.cpu.kind == "cortex-a53")
    a9 = tuple(r for r in fit_rows if r.metric == "cpu_ms" and r.cpu and r.cpu.kind == "cortex-a9")
    dpu = tuple(r for r in fit_rows if r.metric != "cpu_ms")
    p = params
    for kind, rows, keys, bounds in (("cortex-a53", a53, A53_KEYS, A53_BOUNDS), ("cortex-a9", a9, A9_KEYS, A9_BOUNDS)):
        base = p
        x = _fit(
            rows,
            np.array([getattr(base.cpu[kind], k) for k in keys]),
            bounds,
            lambda v, base=base, kind=kind, keys=keys: _with_cpu(base, kind, keys, v),
        )
        p = _with_cpu(base, kind, keys, x)
    scaling = tuple(c for c in scaling_rows if c.fitted)
    # Only rows with several cores busy at once tell how much the cores slow each other down; without
    # such rows the fit knows nothing of it and assumes nothing (0).
    shared = any(r.metric == "fps_multi" and int(r.dpu.get("cores", 1)) > 1 and (r.threads or 2) > 1 for r in dpu)
    keys = DPU_KEYS if shared else tuple(k for k in DPU_KEYS if k != "core_sharing")
    if not shared:
        p = p.with_values(core_sharing=0.0)
    bounds = (tuple(DPU_BOUNDS[k][0] for k in keys), tuple(DPU_BOUNDS[k][1] for k in keys))
    held = [(keys.index(k), value, sd) for k, (value, sd) in PRIORS.items() if k in keys]

    def prior(v: np.ndarray) -> list[float]:
        return [math.log(v[i] / value) / sd for i, value, sd in held]

    x = _fit(dpu, np.array([getattr(p, k) for k in keys]), bounds, lambda v: _with_dpu(p, v, keys), scaling, prior)
    return _with_dpu(p, x, keys)


def report(params: LatencyParams) -> None:
    results = errors(ROWS, params)
    print(f"{'row':<58}{'metric':<11}{'published':>10}{'model':>10}{'error':>9}  use")
    for r in results:
        print(
            f"{r.row.name:<58}{r.row.metric:<11}{r.row.published:>10.2f}{r.predicted:>10.2f}{r.error:>+9.1%}  "
            f"{'fit' if r.row.fitted else 'check'}"
        )
    dpu = [r for r in results if r.row.metric != "cpu_ms"]
    cpu = [r for r in results if r.row.metric == "cpu_ms"]

    def med(rs: list) -> float:  # type: ignore[type-arg]
        return statistics.median(abs(r.error) for r in rs) if rs else float("nan")

    print(
        f"\nDPU rows (§2-3, Table 13): median |error| {med(dpu):.1%} over {len(dpu)} rows "
        f"(fit rows {med([r for r in dpu if r.row.fitted]):.1%}, check rows {med([r for r in dpu if not r.row.fitted]):.1%}); "
        "target <= 10 %"
    )
    print(
        f"CPU rows (§5 ncnn):        median |error| {med(cpu):.1%} over {len(cpu)} rows "
        f"(fit rows {med([r for r in cpu if r.row.fitted]):.1%}, check rows {med([r for r in cpu if not r.row.fitted]):.1%})"
    )
    print(f"\n{'architecture scaling: time ratio':<58}{'published':>10}{'model':>10}{'error':>9}  use    source")
    ratio_errors: dict[bool, list[float]] = {True: [], False: []}
    for check in SCALING:
        ratio = scaling_ratio(check, params)
        ratio_errors[check.fitted].append(abs(ratio / check.published_ratio - 1))
        print(
            f"{check.name:<58}{check.published_ratio:>10.2f}{ratio:>10.2f}{ratio / check.published_ratio - 1:>+9.1%}  "
            f"{'fit' if check.fitted else 'check':<7}{check.source}"
        )
    print(
        "Scaling ratios: |error| "
        + ", ".join(
            f"{'fit' if fitted else 'check'} rows median {statistics.median(e):.1%}" for fitted, e in ratio_errors.items() if e
        )
    )
    b512, b4096 = seed002_times(params)
    print(
        f"seed 002 MobileNetV2-SSD 1024x1024 @325 MHz: B512 {b512:.1f} ms (published ~{SEED002.b512_ms}), "
        f"B4096 {b4096:.1f} ms (~{SEED002.b4096_ms}), ratio {b512 / b4096:.2f} "
        f"(published 4.5; target {SEED002.ratio_low}-{SEED002.ratio_high})"
    )


def held_back(params: LatencyParams) -> dict[bool, list[tuple[Row, float]]]:
    """Each fitted row predicted by a fit that never saw its network: the shipped fit refitted without any row
    (or architecture ratio) of that network, so the error is what a network the fit has not seen gets on a
    setup it has. Keyed by DPU side (True) or Arm side (False); about 40 s a DPU network."""
    out: dict[bool, list[tuple[Row, float]]] = {True: [], False: []}
    for dpu_side in (True, False):
        fitted = [r for r in ROWS if r.fitted and (r.metric != "cpu_ms") == dpu_side]
        for model in sorted({r.model for r in fitted}):
            rows = tuple(r for r in ROWS if not (r.model == model and (r.metric != "cpu_ms") == dpu_side))
            scaling = tuple(c for c in SCALING if c.model != model) if dpu_side else SCALING
            without = refit(params, rows, scaling)
            mine = tuple(r for r in fitted if r.model == model)
            out[dpu_side] += [(r.row, r.predicted) for r in errors(mine, without)]
    return out


def spread(logs: list[float]) -> float:
    """The log spread that puts 80 % of these log errors inside the 80 % interval: their 80th percentile of
    |log error| over Z80 (whatever the shape of the residuals: a median-based spread assumes a normal shape
    these residuals do not have)."""
    return float(np.quantile(np.abs(logs), 0.8)) / Z80


def uncertainty(params: LatencyParams) -> None:
    """The spreads the 80 % intervals use (explorer/perf/uncertainty.py). On the boards the fit has seen, from
    the fitted rows each predicted by a fit that never saw its network (`held_back`): what a user's own
    network gets, which the fitted rows' own residuals understate. For the rows never fitted, the RMS log
    error."""
    results = errors(ROWS, params)

    def logs(dpu: bool, fitted: bool) -> list[float]:
        return [
            math.log(r.predicted / r.row.published)
            for r in results
            if (r.row.metric != "cpu_ms") == dpu and r.row.fitted == fitted
        ]

    def rms(values: list[float]) -> float:
        return math.sqrt(sum(v * v for v in values) / len(values))

    back = {side: [math.log(p / row.published) for row, p in rows] for side, rows in held_back(params).items()}
    ratios = [math.log(scaling_ratio(c, params) / c.published_ratio) for c in SCALING]
    print("\nuncertainty (hw/latency_model.yaml):")
    print(f"  sigma_dpu: {spread(back[True]):.3f}           # {len(back[True])} fitted DPU rows, each held back with its net")
    print(f"  sigma_cpu: {spread(back[False]):.3f}           # {len(back[False])} fitted Arm rows, each held back with its net")
    print(f"  sigma_dpu_unseen: {rms(logs(True, False)):.3f}    # {len(logs(True, False))} DPU rows never fitted")
    print(f"  sigma_cpu_unseen: {rms(logs(False, False)):.3f}    # {len(logs(False, False))} Arm rows never fitted")
    print(f"  sigma_architecture: {rms(ratios):.3f}  # {len(ratios)} architecture ratios")
    kinds = {layer.kind for r in ROWS if r.fitted and r.metric != "cpu_ms" for layer in reference_graph(r.model).layers}
    print(f"  kinds_fitted: [{', '.join(sorted(kinds))}]")
    print(f"  (the fitted rows' own residuals: DPU {spread(logs(True, True)):.3f}, Arm {spread(logs(False, True)):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--uncertainty", action="store_true")
    args = parser.parse_args()
    params = load_params()
    if args.refit:
        params = refit(params)
        print("refitted parameters:")
        for key in DPU_KEYS:
            print(f"  {key} = {getattr(params, key):.4g}")
        for kind, keys in (("cortex-a53", A53_KEYS), ("cortex-a9", A9_KEYS)):
            print(f"  {kind}: " + ", ".join(f"{k} = {getattr(params.cpu[kind], k):.4g}" for k in keys))
        if args.write:
            path = data_path(*PARAMS_FILE)
            write_fitted(params, path)
            print(f"wrote {path}")
    report(params)
    if args.uncertainty:
        uncertainty(params)


if __name__ == "__main__":
    main()
