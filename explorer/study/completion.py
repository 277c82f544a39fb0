"""Hardware completion: once a trial has measured a model variant, find its best DPU configurations by estimate.

What a trial costs is its accuracy: the compressed model is quantized and run on the evaluation data. That
accuracy depends on the model side of the design point (pruning, split, CPU precision) and on which layers
the DPU runs, never on the DPU's size or clock; everything the DPU configuration decides (resources, fit,
latency, FPS) is an estimate that costs well under a millisecond. So after a trial completes with a model
variant not completed before, the other DPU configurations of the search space are evaluated analytically for
that variant (keeping its accuracy, for the configurations that place the layers alike), and those whose
objectives no completed trial matches or beats are queued as the study's next trials (`enqueue_trial`, with
`proposed_by` naming the trial). They are then evaluated like any other trial, from the accuracy cache. The
sampler spends its trials on the model side, where the cost is, and the hardware side of every model variant it
finds is searched through (issue #16).

The DPU space is enumerated exactly when it has at most EXACT_LIMIT configurations; otherwise a Pareto local
search (Paquete & Stützle 2003) starts at the trial's configuration, changes one parameter at a time, keeps the
non-dominated configurations and searches on from each new one, up to SEARCH_BUDGET evaluations.
A study's `hardware_search: sample` switches this off (the sampler then chooses every parameter).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna

from explorer.errors import ExplorerError
from explorer.hardware.config import DpuConfig, DpuSpec
from explorer.hardware.resources import FitReport, ResourceEstimate
from explorer.perf.estimate import PerfEstimate
from explorer.recent import Recent
from explorer.study.design_metrics import Metrics, StudyContext
from explorer.study.record import PROPOSED_BY
from explorer.study.search_space import DPU_MULTIPLE, DesignPoint, Param, design_point, grid_values

EXACT_LIMIT = 4096  # DPU spaces up to this many configurations are enumerated whole
SEARCH_BUDGET = 1500  # configurations evaluated per completion by the local search
CONFIGS_KEPT = 20_000  # DPU configurations (resolved, with their fit) kept across model variants
MAX_VALUES = 64  # an int or float range with more values than this is not varied (the sampler's alone)

Vector = tuple[float, ...]
Fitted = tuple[DpuSpec, ResourceEstimate, FitReport]


@dataclass(frozen=True)
class Candidate:
    """A DPU configuration for one model variant, with the study's objectives (minimisation form)."""

    params: dict[str, Any]  # every parameter of the trial, the DPU ones replaced
    objectives: Vector
    feasible: bool


def dominates(a: Vector, b: Vector) -> bool:
    """`a` is at least as good as `b` in every objective and better in one (all minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def minimised(values: Mapping[str, float], objectives: Sequence[tuple[str, str]]) -> Vector:
    """The objective values in minimisation form (maximised ones negated)."""
    return tuple(values[m] if d == "minimize" else -values[m] for m, d in objectives)


def hardware_params(ctx: StudyContext, values: Mapping[str, Any]) -> list[tuple[Param, list[Any]]]:
    """The DPU parameters the completion varies, with their values: those active for this trial, on a grid
    (categorical, or a range of at most MAX_VALUES steps), and that no other parameter's `when` depends on."""
    watched = {key for p in ctx.space.params for key in p.when}
    out: list[tuple[Param, list[Any]]] = []
    for p in ctx.space.params:
        section, _, name = p.name.partition(".")
        if section != "dpu" or p.name not in values or name in watched or p.name in watched:
            continue
        if any(key not in ctx.facts for key in p.when):
            continue  # active because of another parameter's value: held fixed
        if p.kind == "float" and p.step is None:
            continue  # continuous: the sampler's alone
        options = grid_values(p)
        if 1 < len(options) <= MAX_VALUES:
            out.append((p, options))
    return out


class Completion:
    """Finds the best DPU configurations of each new model variant and queues them (see the module text)."""

    def __init__(self, ctx: StudyContext) -> None:
        self.ctx = ctx
        self.objectives = [(o.metric, o.direction) for o in ctx.cfg.objectives]
        self.done: set[tuple[Any, ...]] = set()  # (model-side parameters, accuracy key) completed here
        self.configs: Recent[tuple[Any, ...], tuple[DpuConfig, DpuSpec, Fitted] | None] = Recent(CONFIGS_KEPT)

    def group(self, values: Mapping[str, Any], metrics: Metrics) -> tuple[Any, ...]:
        model_side = tuple(sorted((k, repr(v)) for k, v in values.items() if not k.startswith("dpu.")))
        return model_side, metrics.accuracy_key

    def hardware_of(self, params: Mapping[str, Any], key: tuple[Any, ...]) -> tuple[DpuConfig, DpuSpec, Fitted] | None:
        """The DPU configuration the DPU values of `params` map to, resolved, with its resources and fit; None when
        illegal. It depends on the DPU values alone, so it is kept for every model variant, by `key` (a value that
        names those DPU values)."""

        def make() -> tuple[DpuConfig, DpuSpec, Fitted] | None:
            try:
                point = design_point(params, self.ctx.space, self.ctx.board, self.ctx.layers, self.ctx.db)
            except ExplorerError:
                return None
            fit = self.ctx.fit(point)
            return point.dpu, fit[0], fit

        return self.configs.get_or_make(key, make)

    def candidates(self, values: Mapping[str, Any], point: DesignPoint, metrics: Metrics) -> list[Candidate]:
        """The non-dominated DPU configurations for the model variant of (`values`, `point`), each placing the
        layers as `point` does (so its accuracy is the trial's); the trial's own configuration included."""
        ctx = self.ctx
        options = ctx.options(point)
        estimator = ctx.estimator(options)
        placements = estimator.placements(point.dpu, point.split)
        varied = hardware_params(ctx, values)
        perf_cache: dict[tuple[Any, ...], PerfEstimate] = {}
        names = tuple(p.name for p, _ in varied)
        # the DPU values the choices do not change: with the names and the choice, a configuration's key
        held = tuple(sorted((k, repr(v)) for k, v in values.items() if k.startswith("dpu.") and k not in names))
        alike: dict[int, bool] = {}  # by the identity of the estimator's (cached) placements: equal to the trial's

        by_ocp = DPU_MULTIPLE in (values.get("pruning.multiple"), ctx.space.fixed.get("pruning", {}).get("multiple"))

        def evaluate(choice: tuple[Any, ...]) -> Candidate | None:
            params = {**values, **dict(zip(names, choice, strict=True))}
            hardware = self.hardware_of(params, (held, names, tuple(map(repr, choice))))
            if hardware is None:
                return None  # an illegal combination: not a candidate
            config, spec, fit = hardware
            other = replace(point, dpu=config, prune_multiple=spec.arch.ocp if by_ocp else point.prune_multiple)
            if ctx.options(other).pruning_key != options.pruning_key:
                return None  # another model: only a trial can measure its accuracy
            placed = estimator.placed(spec, other.split)
            if placed is not placements:
                if id(placed) not in alike:
                    alike[id(placed)] = placed == placements
                if not alike[id(placed)]:
                    return None  # other layers on the DPU, so another accuracy: only a trial can measure it
            if ctx.cfg.constraints.fit and not fit[2].fits:
                return Candidate(params, (), False)  # infeasible whatever its speed: not estimated
            hw = ctx.hardware(other, estimator, perf_cache, fit)
            merged = {**metrics.values, **hw.values}
            if not all(math.isfinite(merged[m]) for m, _ in self.objectives):
                return None
            feasible = all(v <= 0 for v in ctx.constraints(merged, hw).values())
            return Candidate(params, minimised(merged, self.objectives), feasible)

        start = tuple(values[p.name] for p, _ in varied)
        total = math.prod(len(options) for _, options in varied)
        if total <= EXACT_LIMIT:
            found = [c for c in map(evaluate, itertools.product(*(options for _, options in varied))) if c]
            return front(c for c in found if c.feasible)
        return local_search(start, [options for _, options in varied], evaluate)

    def propose(
        self, values: Mapping[str, Any], point: DesignPoint, metrics: Metrics, existing: Sequence[Vector], limit: int
    ) -> list[Candidate]:
        """The candidates of a new model variant to queue: not matched or beaten by a completed feasible trial
        (`existing`), at most `limit`, spread along the first objective. Empty when the variant was done."""
        key = self.group(values, metrics)
        if key in self.done or limit < 1:
            return []
        self.done.add(key)
        fresh = [
            c
            for c in self.candidates(values, point, metrics)
            if not any(e == c.objectives or dominates(e, c.objectives) for e in existing)
        ]
        return spread(sorted(fresh, key=lambda c: c.objectives), limit)


def spread(candidates: Sequence[Candidate], limit: int) -> list[Candidate]:
    """At most `limit` of `candidates` (sorted along the first objective), evenly spaced along it, ends kept."""
    if limit < 1:
        return []
    if len(candidates) <= limit:
        return list(candidates)
    step = (len(candidates) - 1) / (limit - 1) if limit > 1 else 0.0
    return [candidates[round(i * step)] for i in range(limit)]


def front(candidates: Iterator[Candidate] | Sequence[Candidate]) -> list[Candidate]:
    """The non-dominated candidates, one per objective vector (the first seen)."""
    kept: dict[Vector, Candidate] = {}
    for c in candidates:
        if c.objectives in kept or any(dominates(o, c.objectives) for o in kept):
            continue
        for o in [o for o in kept if dominates(c.objectives, o)]:
            del kept[o]
        kept[c.objectives] = c
    return list(kept.values())


def local_search(
    start: tuple[Any, ...], options: Sequence[Sequence[Any]], evaluate: Any, budget: int = SEARCH_BUDGET
) -> list[Candidate]:
    """Pareto local search over one-parameter changes from `start`: the archive of non-dominated feasible
    candidates; each new member's neighbours are evaluated in turn, until none is new or the budget is spent.
    An infeasible neighbour of a member is a stepping stone: its own neighbours are evaluated too (one step),
    since a design that does not fit often needs a second change to fit (more cores, and UltraRAM for them).
    A front is not always connected by single changes either (a larger architecture pays off only with UltraRAM
    for its banks): once no member is left to search from, the dominated neighbours of members nearest to the
    front are stepping stones too, as many as the front has members."""
    seen: set[tuple[Any, ...]] = {start}
    archive: dict[Vector, tuple[tuple[Any, ...], Candidate]] = {}
    pending: list[tuple[tuple[Any, ...], bool]] = [(start, False)]  # (point, reached through an infeasible one)
    later: list[tuple[tuple[Any, ...], Vector]] = []  # dominated neighbours of members, with their objectives
    first = evaluate(start)
    if first is not None and first.feasible:
        archive[first.objectives] = (start, first)
    spent, stones = 1, -1
    while (pending or (later and stones)) and spent < budget:
        if pending:
            here, stepping = pending.pop(0)
        else:
            if stones < 0:  # the members are searched: the stepping stones nearest to the front, one per member
                stones = len(archive)
                later = [later[i] for i in np.argsort(_distances([v for _, v in later], list(archive)), kind="stable")]
            here, stepping, stones = later.pop(0)[0], True, stones - 1
        member = any(point == here for point, _ in archive.values())
        if archive and not stepping and here != start and not member:
            continue  # dominated since it was added (with nothing feasible found yet, every point walks on)
        for i, values in enumerate(options):
            for value in values:
                there = (*here[:i], value, *here[i + 1 :])
                if value == here[i] or there in seen or spent >= budget:
                    continue
                seen.add(there)
                spent += 1
                c = evaluate(there)
                if c is None or not c.feasible:
                    if c is not None and (not archive or not stepping):
                        pending.append((there, bool(archive)))  # a stepping stone (or still looking for a fit)
                    continue
                if c.objectives in archive or any(dominates(o, c.objectives) for o in archive):
                    if not stepping and stones < 0:
                        later.append((there, c.objectives))
                    continue
                for o in [o for o in archive if dominates(c.objectives, o)]:
                    del archive[o]
                archive[c.objectives] = (there, c)
                pending.append((there, False))
    return [c for _, c in archive.values()]


def _distances(points: Sequence[Vector], front_: Sequence[Vector]) -> np.ndarray:
    """How far each point lies behind the front: the least share (of each objective's magnitude on the front) by
    which some member is better in every objective (the additive epsilon indicator, scaled)."""
    if not points or not front_:
        return np.zeros(len(points))
    p, f = np.asarray(points, dtype=float), np.asarray(front_, dtype=float)
    scale = np.abs(f).max(axis=0)
    scale[scale == 0] = 1.0
    return ((p[:, None, :] - f[None, :, :]) / scale).max(axis=2).min(axis=1)  # type: ignore[no-any-return]


def queue_best_hardware(
    study: optuna.Study,
    trial: optuna.Trial,
    completion: Completion,
    point: DesignPoint,
    metrics: Metrics,
    room: Callable[[], int],
    lock: Callable[[], contextlib.AbstractContextManager[None]],
) -> int:
    """Queue the best DPU configurations of `trial`'s model variant (a trial just told complete), at most `room()`
    of them; the number queued. A variant completed before costs nothing here (the study is not read).
    `room` is asked again under `lock` (store.queue_lock) right before queuing: other workers may have queued
    or started trials while the candidates were searched."""
    if completion.group(trial.params, metrics) in completion.done:
        return 0
    directions = [d for _, d in completion.objectives]
    existing = [
        tuple(v if d == "minimize" else -v for v, d in zip(t.values, directions, strict=True))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.values is not None and all(c <= 0 for c in (t.constraints or {}).values())
    ]
    proposed = completion.propose(trial.params, point, metrics, existing, room())
    if not proposed:
        return 0
    with lock():
        proposed = spread(proposed, room())
        for c in proposed:  # not matched by a completed trial (propose); a twin queued elsewhere is reused (find_twin)
            study.enqueue_trial(c.params, user_attrs={PROPOSED_BY: f"hardware completion of trial {trial.number}"})
    return len(proposed)


def queue_limit(n_trials: int) -> int:
    """How many configurations one completion may queue: a fiftieth of the study, at least 4. Few: the trials
    are better spent finding more model variants, whose accuracy only a trial measures (bench/search_quality.py:
    on the KV260 subspace 4 per variant reach 0.96 of the front's hypervolume in 100 trials, 25 reach 0.93)."""
    return max(4, n_trials // 50)
