"""80 % prediction intervals for every FPS and latency estimate (issue #14).

The latency model's error is taken as log-normal. Its spread is what the model's own residuals on published
rows show (hw/latency_model.yaml `uncertainty`, printed by `bench/latency_fit.py --uncertainty`), widened by
how far the design point is from what the fit has seen:

- the DPU side (DPU time and runner calls) has `sigma_dpu` on a board the fit has seen (the spread of the
  fitted rows each predicted by a fit that never saw their network: a user's network is new to the fit), and
  `sigma_dpu_unseen` (the spread of published rows the fit never saw) elsewhere;
- the Arm side (CPU operators) likewise `sigma_cpu` / `sigma_cpu_unseen` by whether the board is seen;
- an architecture other than the fitted ones adds `sigma_architecture` (the spread of the architecture
  ratios) to the DPU side;
- DPU time spent in layer kinds that no fitted row has (`kinds_fitted`: a softmax, a deconvolution, an
  element-wise multiply, a global max pool, ...) has never been compared with a measurement: that part of
  the DPU side adds the spread of the rows never fitted (`sigma_dpu_unseen`);
- a calibration profile makes its board a seen one, with the spread of the profile's own leave-one-out
  errors when it has at least three rows.

The two sides combine by their shares of the time: for a latency L = D + C (DPU side D, Arm side C, pre/post
given by the user and exact), sigma_L^2 = (D/L sigma_D)^2 + (C/L sigma_C)^2. fps_multi takes the side that
bounds it. The interval is the estimate times exp(-+ z sigma), z = 1.2816 for 80 %.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Any

from explorer.datafiles import data_path
from explorer.fileio import safe_load
from explorer.hardware.database import Board
from explorer.perf.params import PARAMS_FILE

Z80 = 1.2816  # standard normal quantile of 0.9: 80 % of a normal lies within +-Z80 sigma


@dataclass(frozen=True)
class ErrorModel:
    sigma_dpu: float
    sigma_cpu: float
    sigma_architecture: float
    architectures_fitted: tuple[str, ...]
    basis: str  # what the spread rests on, for the user
    level: float = 0.8
    kinds_fitted: frozenset[str] = frozenset()  # DPU layer kinds the fitted rows have
    sigma_operator: float = 0.0  # added to DPU time in other kinds

    def dpu_sigma(self, arch: str) -> float:
        extra = 0.0 if arch in self.architectures_fitted else self.sigma_architecture
        return math.hypot(self.sigma_dpu, extra)


@functools.cache
def _table() -> dict[str, Any]:
    raw = safe_load(data_path(*PARAMS_FILE).read_text(encoding="utf-8"))
    return dict(raw["uncertainty"])


def shipped_error_model(board: Board) -> ErrorModel:
    """The spread of the shipped fit on `board`: its fitted rows' if the fit has seen the board, else the
    spread of the rows the fit never saw."""
    table = _table()
    seen = board.name.lower() in {b.lower() for b in table["boards_fitted"]}
    suffix = "" if seen else "_unseen"
    basis = (
        f"the shipped fit's residuals on its published rows; {board.name} is among the fitted boards"
        if seen
        else f"{board.name} is not in the shipped fit: the spread of published rows the fit never saw"
    )
    return ErrorModel(
        sigma_dpu=float(table[f"sigma_dpu{suffix}"]),
        sigma_cpu=float(table[f"sigma_cpu{suffix}"]),
        sigma_architecture=float(table["sigma_architecture"]),
        architectures_fitted=tuple(table["architectures_fitted"]),
        basis=basis,
        level=float(table["level"]),
        **_operators(table),
    )


def network_spread() -> float:
    """The shipped model's log spread on a network it never saw, on a board it has (`sigma_dpu`)."""
    return float(_table()["sigma_dpu"])


def _operators(table: dict[str, Any]) -> dict[str, Any]:
    return {"kinds_fitted": frozenset(table["kinds_fitted"]), "sigma_operator": float(table["sigma_dpu_unseen"])}


def profile_error_model(board: Board, label: str, left_out_log_errors: list[float]) -> ErrorModel:
    """A calibrated board: seen, with the spread of the profile's leave-one-out errors (three rows or more;
    never narrower than the shipped fit's on its own rows)."""
    table = _table()
    sigma = float(table["sigma_dpu"])
    if len(left_out_log_errors) >= 3:
        sigma = max(sigma, 1.4826 * statistics.median(abs(e) for e in left_out_log_errors))
    return ErrorModel(
        sigma_dpu=sigma,
        sigma_cpu=max(float(table["sigma_cpu"]), sigma),
        sigma_architecture=float(table["sigma_architecture"]),
        architectures_fitted=tuple(table["architectures_fitted"]),
        basis=f"calibration profile {label}",
        level=float(table["level"]),
        **_operators(table),
    )


def _combined(parts: list[tuple[float, float]]) -> float:
    """sigma of log(sum of parts), each part (time, sigma), independent; 0 for no time."""
    total = sum(t for t, _ in parts)
    if total <= 0:
        return 0.0
    return math.sqrt(sum((t / total * s) ** 2 for t, s in parts))


@dataclass(frozen=True)
class Intervals:
    level: float
    bounds: dict[str, tuple[float, float]]  # fps_single, fps_multi, latency_ms -> (low, high)
    sigma: dict[str, float]
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "basis": self.basis,
            **{name: [low, high] for name, (low, high) in self.bounds.items()},
        }


def intervals(
    model: ErrorModel,
    arch: str,
    *,
    dpu_ms: float,
    host_ms: float,
    cpu_ms: float,
    pre_post_ms: float,
    latency_ms: float,
    fps_single: float,
    fps_multi: float,
    bound: str,
    dpu_unfitted_ms: float = 0.0,
) -> Intervals:
    """The 80 % intervals of one estimate (see the module's docstring); `dpu_unfitted_ms` is the part of
    `dpu_ms` spent in layer kinds no fitted row has."""
    s_dpu, s_cpu = model.dpu_sigma(arch), model.sigma_cpu
    unfitted = (dpu_unfitted_ms, math.hypot(s_dpu, model.sigma_operator))
    dpu_parts = [(dpu_ms - dpu_unfitted_ms + host_ms, s_dpu), unfitted]
    cpu_side = (cpu_ms, s_cpu)
    s_latency = _combined([*dpu_parts, cpu_side, (pre_post_ms, 0.0)])
    s_dpu_frame = _combined([(dpu_ms - dpu_unfitted_ms, s_dpu), unfitted]) if dpu_ms > 0 else s_dpu
    s_multi = {"dpu": s_dpu_frame, "arm": _combined([(host_ms, s_dpu), cpu_side, (pre_post_ms, 0.0)])}.get(bound, s_latency)
    z = Z80 if abs(model.level - 0.8) < 1e-9 else _z(model.level)

    def around(value: float, sigma: float) -> tuple[float, float]:
        return (value * math.exp(-z * sigma), value * math.exp(z * sigma))

    return Intervals(
        model.level,
        {
            "latency_ms": around(latency_ms, s_latency),
            "fps_single": around(fps_single, s_latency),
            "fps_multi": around(fps_multi, s_multi),
        },
        {"latency_ms": s_latency, "fps_single": s_latency, "fps_multi": s_multi},
        model.basis,
    )


def _z(level: float) -> float:
    """The two-sided standard normal quantile for `level` (bisection on erf; levels other than 80 %)."""
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid / math.sqrt(2)) < level else (lo, mid)
    return (lo + hi) / 2
