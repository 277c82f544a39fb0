"""What a report shows, computed from the study's trials (pure: no drawing, no storage access)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    values: tuple[float, ...]
    feasible: bool
    params: dict[str, Any]
    metrics: dict[str, float]
    sources: dict[str, str]
    design: dict[str, Any]
    details: dict[str, Any]
    fail_reason: str = ""
    measured: dict[str, Any] = field(default_factory=dict)  # "build" / "run" records of explore import-*
    proposed_by: str = ""  # what queued the trial (hardware completion), "" when the sampler chose it


@dataclass(frozen=True)
class ParetoInfo:
    objectives: tuple[tuple[str, str], ...]  # (metric, direction)
    rows: tuple[TrialRow, ...]  # every trial
    pareto: tuple[int, ...]  # trial numbers of the feasible Pareto-optimal designs
    hypervolume: tuple[tuple[int, float], ...] = field(default_factory=tuple)  # (trial number, HV so far)

    @property
    def complete(self) -> list[TrialRow]:
        return [r for r in self.rows if r.state == "COMPLETE"]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b (both already in minimisation form)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """Indices of the non-dominated points (minimisation)."""
    p = np.asarray(points, dtype=float)
    if len(p) == 0:
        return []
    p = p.reshape(len(p), -1)
    no_worse = np.all(p[:, None, :] <= p[None, :, :], axis=2)  # [j, i]: j is at least as good as i everywhere
    better = np.any(p[:, None, :] < p[None, :, :], axis=2)
    return np.flatnonzero(~np.any(no_worse & better, axis=0)).tolist()


def hypervolume_2d_or_more(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume (minimisation) dominated by `points` up to `reference`, by inclusion-exclusion slicing."""
    pts = points[np.all(points < reference, axis=1)]
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 1:
        return float(reference[0] - pts[:, 0].min())
    order = np.argsort(pts[:, 0])
    pts = pts[order]
    volume = 0.0
    for i in range(len(pts)):
        width = (pts[i + 1, 0] if i + 1 < len(pts) else reference[0]) - pts[i, 0]
        if width > 0:
            volume += width * hypervolume_2d_or_more(pts[: i + 1, 1:], reference[1:])
    return volume


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume with Optuna's WFG algorithm; the slicing method above if that private API moves."""
    try:
        from optuna._hypervolume import compute_hypervolume

        inside = points[np.all(points < reference, axis=1)]
        return float(compute_hypervolume(inside, reference, assume_pareto=True)) if len(inside) else 0.0
    except ImportError:
        return hypervolume_2d_or_more(points, reference)


def pareto_info(objectives: Sequence[tuple[str, str]], rows: Sequence[TrialRow]) -> ParetoInfo:
    """The feasible Pareto front and the hypervolume reached after each trial (objectives normalised to the
    range seen over feasible trials, reference point 1.1 in every normalised dimension)."""
    signs = np.array([1.0 if d == "minimize" else -1.0 for _, d in objectives])
    done = [r for r in rows if r.state == "COMPLETE" and all(math.isfinite(v) for v in r.values)]
    feasible = [r for r in done if r.feasible]
    front: list[int] = []
    history: list[tuple[int, float]] = []
    if feasible:
        loss = np.array([r.values for r in feasible]) * signs
        front = [feasible[i].number for i in pareto_front(loss.tolist())]
        lo, hi = loss.min(axis=0), loss.max(axis=0)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        normalised = (loss - lo) / span
        reference = np.full(len(objectives), 1.1)
        order = sorted(range(len(feasible)), key=lambda i: feasible[i].number)
        kept: list[int] = []  # the front so far: a new point joins it or not, and may push members out
        for i in order:
            candidates = [*kept, i]
            kept = [candidates[k] for k in pareto_front(normalised[candidates])]
            history.append((feasible[i].number, hypervolume(normalised[kept], reference)))
    return ParetoInfo(tuple((m, d) for m, d in objectives), tuple(rows), tuple(sorted(front)), tuple(history))
