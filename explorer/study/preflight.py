"""Prove that a study can run before it spends a trial: `explore validate`, and `explore run` before its first trial.

Three checks, each failing with the cause:

1. `check_space`: every value the search space can take is legal for the board and the IP version
   (the DPU field table and `check_config`'s rules), and the pruning and split values are in range.
2. `check_fit`: some configuration of the space fits the device under the ceilings. The hardware side
   is enumerated: a parameter with one choice that needs no more of any resource than its others (at a
   base configuration) is fixed to it, the others are enumerated in full, which is exact when option
   costs add up as they do in the resource model (PG338 option rows). When nothing fits, the message
   names the resource that rules the space out and the closest configuration.
3. `probe`: one real design point end to end (model load with the study's shapes, the data against the
   model's inputs, the evaluator's metrics), and every objective and bound names a metric it produced,
   with a finite value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from explorer.errors import ConfigError, ExplorerError
from explorer.hardware.config import check_config, resolve
from explorer.hardware.database import RESOURCE_KINDS, Board, HwDatabase
from explorer.hardware.resources import Resources, check_fit, estimate_resources
from explorer.study.config import StudyConfig
from explorer.study.design_metrics import Metrics, StudyContext
from explorer.study.search_space import DesignPoint, Param, SearchSpace, check_space, design_point, is_active, param_values


# -- the fit ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitVerdict:
    configurations: int  # enumerated hardware configurations
    fitting: DesignPoint | None  # the first that fits (the smallest enumerated), None when none does
    message: str  # why nothing fits (empty when something does)


def _hardware_params(space: SearchSpace) -> list[Param]:
    return [p for p in space.params if p.name.startswith("dpu.")]


def _load(resources: Resources, board: Board, ceilings: Mapping[str, float]) -> dict[str, float]:
    """Use of each resource as a fraction of what its ceiling allows."""
    out = {}
    for kind in RESOURCE_KINDS:
        capacity = board.device.capacity(kind)
        used = resources.get(kind)
        out[kind] = (used / (capacity * ceilings[kind])) if capacity else (math.inf if used > 0 else 0.0)
    return out


def _hardware_points(
    space: SearchSpace, board: Board, layers: int, db: HwDatabase, facts: Mapping[str, Any]
) -> Iterator[DesignPoint]:
    params = _hardware_params(space)
    base = {p.name: param_values(p)[0] for p in params}

    def point(values: Mapping[str, Any]) -> DesignPoint | None:
        active: dict[str, Any] = {}
        for p in params:
            if is_active(p, facts, active):
                active[p.name] = values[p.name]
        try:
            return design_point(active, space, board, layers, db)
        except ExplorerError:
            return None

    def resources(values: Mapping[str, Any]) -> Resources | None:
        found = point(values)
        return estimate_resources(resolve(found.dpu, db)).total if found else None

    # a choice that needs no more of any resource than every other choice of its parameter is the one to keep
    choices: dict[str, list[Any]] = {}
    for p in params:
        options = param_values(p)
        estimates = [(v, resources({**base, p.name: v})) for v in options]
        known = [(v, r) for v, r in estimates if r is not None]
        cheapest = [v for v, r in known if all(all(r.get(k) <= o.get(k) for k in RESOURCE_KINDS) for _, o in known)]
        choices[p.name] = cheapest[:1] if cheapest and len(known) == len(options) else options
    names = list(choices)
    seen: set[tuple[Any, ...]] = set()
    for combo in itertools.product(*(choices[n] for n in names)):
        found = point(dict(zip(names, combo, strict=True)))
        if found is None or check_config(found.dpu, board.device, db):
            continue
        key = tuple(found.dpu.to_dict().values())
        if key not in seen:
            seen.add(key)
            yield found


def check_fit_possible(cfg: StudyConfig, ctx: StudyContext) -> FitVerdict:
    """Whether any hardware configuration of the space fits the device under the ceilings (see the module doc)."""
    board, db = ctx.board, ctx.db
    count, best, best_load = 0, None, math.inf
    lowest = dict.fromkeys(RESOURCE_KINDS, math.inf)
    for candidate in _hardware_points(ctx.space, board, ctx.layers, db, ctx.facts):
        count += 1
        total = estimate_resources(resolve(candidate.dpu, db)).total
        if check_fit(total, board.device, cfg.constraints.ceilings).fits:
            return FitVerdict(count, candidate, "")
        load = _load(total, board, cfg.constraints.ceilings)
        for kind, value in load.items():
            lowest[kind] = min(lowest[kind], value)
        if max(load.values()) < best_load:
            best, best_load = candidate, max(load.values())
    if count == 0:
        return FitVerdict(0, None, "the search space holds no legal DPU configuration for this board")
    over = [k for k, v in lowest.items() if v > 1]
    device = board.device
    if over:
        ceilings = cfg.constraints.ceilings
        detail = "; ".join(
            f"{k} needs at least {100 * lowest[k] * ceilings[k]:.0f} % of the {device.capacity(k)} of {device.name} "
            f"(ceiling {100 * ceilings[k]:.0f} %)"
            for k in over
        )
        cause = f"ruled out by {', '.join(over)}: {detail}"
    else:
        cause = "each resource can be met alone, but no configuration meets all ceilings at once"
    closest = f"; the closest is {best.dpu.arch} x{best.dpu.cores}" if best else ""
    return FitVerdict(
        count,
        None,
        f"no configuration of the search space fits the {device.name} of {board.name} ({count} configurations "
        f"checked; resources are estimates): {cause}{closest}. Allow smaller architectures or fewer cores in "
        "search_space, or raise constraints.ceilings",
    )


# -- one design point end to end ------------------------------------------------------------------------------
def check_data(ctx: StudyContext) -> list[str]:
    """The data's arrays against the model's inputs (shapes past the batch)."""
    problems = []
    graph = ctx.compression.graph
    for name, array in ctx.compression.data.inputs.items():
        want = graph.shapes.get(name)
        if want is not None and list(array.shape[1:]) != list(want[1:]):
            problems.append(
                f"data input {name!r} has samples of shape {list(array.shape[1:])}, but the model takes {list(want[1:])}"
            )
    return problems


def probe(cfg: StudyConfig, ctx: StudyContext, point: DesignPoint) -> Metrics:
    """Evaluate `point` for real; an ExplorerError with the cause when a trial could not succeed."""
    problems = check_data(ctx)
    if problems:
        raise ExplorerError(f"{cfg.path}: the data does not match the model: " + "; ".join(problems))
    try:
        metrics = ctx.metrics(point)
    except ExplorerError as exc:
        raise ExplorerError(f"{cfg.path}: evaluating one design point failed, so every trial would: {exc}") from None
    except Exception as exc:
        raise ExplorerError(
            f"{cfg.path}: evaluating one design point failed, so every trial would "
            f"(evaluator {cfg.data.evaluator}): {type(exc).__name__}: {exc}"
        ) from exc
    wanted = [(f"objectives: {o.metric}", o.metric) for o in cfg.objectives]
    wanted += [(f"constraints: {b.kind} {b.metric}", b.metric) for b in cfg.constraints.bounds]
    bad = []
    for where, metric in wanted:
        if metric not in metrics.values:
            bad.append(f"{where}: the evaluator produced no metric {metric!r} (it gives {', '.join(sorted(metrics.values))})")
        elif not math.isfinite(metrics.values[metric]):
            bad.append(
                f"{where}: {metric} is {metrics.values[metric]} on a plain design point; the evaluator must return numbers"
            )
    if bad:
        raise ExplorerError(f"{cfg.path}: the study cannot run:\n  - " + "\n  - ".join(bad))
    return metrics


@dataclass(frozen=True)
class Preflight:
    ctx: StudyContext
    fit: FitVerdict
    metrics: Metrics


def run_checks(cfg: StudyConfig, ctx: StudyContext | None = None) -> Preflight:
    ctx = ctx or StudyContext(cfg)
    problems = check_space(ctx.space, ctx.board, ctx.layers, ctx.db, ctx.facts)  # the file's checks passed: the split range
    if problems:
        raise ConfigError(str(cfg.path), problems)
    fit = check_fit_possible(cfg, ctx)
    if fit.fitting is None:
        if cfg.constraints.fit:
            raise ExplorerError(f"{cfg.path}: {fit.message}")
        points = _hardware_points(ctx.space, ctx.board, ctx.layers, ctx.db, ctx.facts)
        point = next(points, None)
        if point is None:
            raise ExplorerError(f"{cfg.path}: {fit.message}")
    else:
        point = fit.fitting
    return Preflight(ctx, fit, probe(cfg, ctx, point))


def preflight(cfg: StudyConfig) -> StudyContext:
    """The checks `explore run` makes before its first trial; returns the study context they built."""
    return run_checks(cfg).ctx
