"""Calibration profiles: the latency model's board-level parameters fitted to a user's measurements (issue #14).

The shipped parameters (hw/latency_model.yaml) were fitted to published numbers; a board the fit has not seen
can differ systematically (DDR speed and contention, the Arm's clock and OS, the runtime's per-call cost).
`fit_profile` refits seven board-level parameters to measured rows by regularised least squares toward the
shipped fit:

    minimise  sum_i (log(predicted_i / measured_i) / NOISE)^2  +  sum_j (u_j / PRIOR_SD_j)^2,   value_j = shipped_j * exp(u_j)

so one to three rows move the parameters the rows are sensitive to, a little, and many rows cannot overfit.
PRIOR_SD, per parameter, is how far a board can plausibly sit from the shipped fit (one standard deviation of
log(value / shipped)): the DPU IP's own costs (its ports' efficiency, its per-layer cost) vary little from board
to board, the DDR and the Arm side (memory type, OS, runtime) more. NOISE is the shipped model's spread on a
network it never saw (hw/latency_model.yaml `sigma_dpu`, about 7 %): two networks' rows cannot pin down more
than that. Efficiencies stay at most 1. The fit is a small Levenberg-Marquardt with a
finite-difference Jacobian (numpy only).

How far to trust the rows over the shipped fit is chosen by cross-validation over networks, as ridge
regression chooses its penalty: with rows of two networks or more, each network's rows are predicted by fits
to the other networks' rows with every prior spread scaled by a strength of STRENGTHS, and the weakest
strength that predicts them within one standard error of the best is used (0: the profile keeps the shipped
fit). A board-level difference shows in every network, so it survives; one network's own error does not carry
to the next, so it does not. With rows of one network there is nothing to cross-validate, and the priors hold
at full width.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from explorer.errors import ExplorerError
from explorer.fileio import file_digest, safe_load
from explorer.hardware.config import parse_dpu_config
from explorer.hardware.database import Board, HwDatabase, load_database
from explorer.perf.estimate import EstimateOptions, Estimator
from explorer.perf.measurements import Measurement
from explorer.perf.params import LatencyParams, load_params
from explorer.perf.uncertainty import ErrorModel, network_spread, profile_error_model

# What a profile may change, and what each stands for on the board.
PARAMETERS = {
    "ddr_efficiency": "share of the DDR's peak bandwidth the DPU gets",
    "port_efficiency": "share of an AXI data port's peak the DPU gets",
    "layer_overhead_cycles": "fixed DPU cycles per layer (instruction fetch, pipeline fill)",
    "core_sharing": "per other busy core, the share by which a core's frame lengthens on the paths the cores share",
    "runner_overhead_ms_at_1ghz": "Arm time of one DPU runner call, at 1 GHz",
    "io_ns_per_element_at_1ghz": "Arm time to (de)quantise one boundary element, at 1 GHz",
    "arm_speed": "the Arm's speed relative to the shipped fit for its kind (clock, memory, OS)",
}
_CAPPED = ("ddr_efficiency", "port_efficiency")
# One standard deviation of log(value / shipped) (docs/latency_model.md "Calibration profiles").
PRIOR_SD = {
    "ddr_efficiency": 0.25,  # memory type and controller settings differ between boards (LPDDR4, DDR4, DDR3)
    "port_efficiency": 0.15,  # the same AXI ports on every board; the interconnect's settings differ
    "layer_overhead_cycles": 0.25,  # the IP's instruction fetch and pipeline fill; the DDR's latency varies
    "runner_overhead_ms_at_1ghz": 0.5,  # the Linux kernel, the runtime's version and its driver
    "io_ns_per_element_at_1ghz": 0.3,  # the Arm's memory system
    "arm_speed": 0.2,  # the Arm's clock is known; its memory and OS are not
}
# Parameters that may be 0 move additively: value = shipped + scale * u, at least 0. core_sharing's scale, 0.1
# per other core, is about its shipped value (0.11, fitted to the three-core ZCU102): one standard deviation
# is a frame 20 % longer or shorter on three cores.
ADDITIVE = {"core_sharing": 0.1}
# Multipliers of every prior spread that the cross-validation over networks chooses from (`choose_strength`).
STRENGTHS = (0.0, 0.25, 0.5, 1.0)
PROFILE_KIND = "dpu-explorer latency calibration profile"


def shipped_values(params: LatencyParams) -> dict[str, float]:
    """The values a profile's parameters take under `params` (arm_speed is a factor: 1)."""
    values = {name: float(getattr(params, name)) for name in PARAMETERS if name != "arm_speed"}
    values["arm_speed"] = 1.0
    return values


def apply(params: LatencyParams, board: Board, values: dict[str, float]) -> LatencyParams:
    """`params` with the profile's values (`arm_speed` scales the board's CPU kind's relative speed)."""
    direct = {k: (min(v, 1.0) if k in _CAPPED else v) for k, v in values.items() if k != "arm_speed"}
    out = params.with_values(**direct)
    speed = values.get("arm_speed", 1.0)
    if speed != 1.0:
        cpu = dict(out.cpu)
        kind = board.cpu.kind if board.cpu.kind in cpu else "cortex-a53"
        cpu[kind] = replace(cpu[kind], relative_speed=cpu[kind].relative_speed * speed)
        out = replace(out, cpu=cpu)
    return out


class Predictor:
    """Predicts measured rows under any parameter set; the models are loaded and placed once."""

    def __init__(self, board: Board, rows: Sequence[Measurement], db: HwDatabase | None = None) -> None:
        from explorer.graph.prepare import load_graph

        self.board, self.rows, self.db = board, list(rows), db or load_database()
        estimators: dict[tuple[Path, Any], Estimator] = {}  # one per model: its cut points and placements are shared
        self.estimators: list[Estimator] = []
        for row in self.rows:
            key = (row.model, row.input_shape)
            if key not in estimators:
                if not row.model.is_file():
                    raise ExplorerError(f"{row.where}: model {row.model}: no such ONNX file")
                graph = load_graph(row.model, {"": list(row.input_shape)} if row.input_shape else None)
                estimators[key] = Estimator(graph, board, load_params(), self.db)
            self.estimators.append(estimators[key])
        self.configs = []
        for row in self.rows:
            try:
                self.configs.append(parse_dpu_config(dict(row.dpu), board, db=self.db))
            except ExplorerError as exc:
                raise ExplorerError(f"{row.where}: {exc}") from exc

    def predict(self, params: LatencyParams, only: Sequence[int] | None = None) -> list[float]:
        out = []
        for i in range(len(self.rows)) if only is None else only:
            row, estimator = self.rows[i], self.estimators[i].with_params(params)
            options = EstimateOptions(row.threads, row.pre_ms, row.post_ms, row.cpu_precision)
            out.append(float(getattr(estimator.estimate(self.configs[i], row.split, options), row.metric)))
        return out


def _levenberg_marquardt(residuals: Callable[[np.ndarray], np.ndarray], size: int, iterations: int = 40) -> np.ndarray:
    u = np.zeros(size)
    r = residuals(u)
    cost, mu = float(r @ r), 1e-2
    for _ in range(iterations):
        step = 1e-4
        jac = np.stack([(residuals(u + step * np.eye(size)[j]) - r) / step for j in range(size)], axis=1)
        normal = jac.T @ jac
        while True:
            delta = np.linalg.solve(normal + mu * (np.diag(np.diag(normal)) + np.eye(size)), -jac.T @ r)
            candidate = residuals(u + delta)
            if float(candidate @ candidate) < cost:
                u, r, cost, mu = u + delta, candidate, float(candidate @ candidate), mu / 3
                break
            mu *= 4
            if mu > 1e8:
                return u
        if float(np.max(np.abs(delta))) < 1e-5:
            break
    return u


def fit_values(predictor: Predictor, use: Sequence[int], base: LatencyParams, strength: float = 1.0) -> dict[str, float]:
    """The profile's values fitted to the rows `use` (indices into predictor.rows), every prior spread scaled by
    `strength` (0: the shipped values)."""
    names = list(PARAMETERS)
    shipped = shipped_values(base)
    if strength <= 0:
        return shipped
    measured = np.array([predictor.rows[i].value for i in use])
    spread = strength * np.array([1.0 if name in ADDITIVE else PRIOR_SD[name] for name in names])  # additive: u in scales
    noise = network_spread()  # log(predicted / measured) of a right parameter set, on a network new to the fit

    def values_of(u: np.ndarray) -> dict[str, float]:
        values = {
            name: max(0.0, shipped[name] + ADDITIVE[name] * float(x)) if name in ADDITIVE else shipped[name] * math.exp(float(x))
            for name, x in zip(names, u, strict=True)
        }
        return {k: (min(v, 1.0) if k in _CAPPED else v) for k, v in values.items()}  # what the profile applies

    def residuals(u: np.ndarray) -> np.ndarray:
        predicted = np.array(predictor.predict(apply(base, predictor.board, values_of(u)), use))
        return np.concatenate([np.log(predicted / measured) / noise, u / spread])

    return values_of(_levenberg_marquardt(residuals, len(names)))


@dataclass(frozen=True)
class Strength:
    """How far the fit may move from the shipped one (a multiplier of every prior spread), and how it was chosen."""

    value: float
    networks: int  # the networks (model files) the rows measured
    scores: dict[float, float] = field(default_factory=dict)  # strength -> mean squared log error, each network left out
    standard_error: float = 0.0  # of the least score: the weakest strength within it is chosen
    given: str = ""  # who set it, when it was not chosen (`explore calibrate --strength`, a study's recalibration)

    @property
    def chosen_by(self) -> str:
        if self.given:
            return self.given
        if not self.scores:
            return "rows of one network: nothing to cross-validate, the priors at full width"
        return (
            f"cross-validation over {self.networks} networks (each predicted by fits to the others; the weakest "
            "strength within one standard error of the best)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "chosen_by": self.chosen_by,
            "scores": {str(k): float(f"{v:.6g}") for k, v in self.scores.items()},
            "standard_error": float(f"{self.standard_error:.6g}"),
        }


def choose_strength(predictor: Predictor, use: Sequence[int], base: LatencyParams) -> Strength:
    """The weakest strength of STRENGTHS whose fits predict each network's rows of `use` from the other networks'
    rows about as well as the best one: mean squared log error within one standard error of the least (the
    "one-standard-error rule" of cross-validation; Hastie, Tibshirani and Friedman, The Elements of Statistical
    Learning, 2nd ed., section 7.10)."""
    networks: dict[Path, list[int]] = {}
    for i in use:
        networks.setdefault(predictor.rows[i].model, []).append(i)
    if len(networks) < 2:
        return Strength(1.0, len(networks))
    errors: dict[float, list[float]] = {}
    for strength in STRENGTHS:
        errors[strength] = []
        for rows in networks.values():
            values = fit_values(predictor, [i for i in use if i not in rows], base, strength)
            predicted = predictor.predict(apply(base, predictor.board, values), rows)
            errors[strength] += [math.log(p / predictor.rows[i].value) ** 2 for p, i in zip(predicted, rows, strict=True)]
    scores = {strength: statistics.fmean(e) for strength, e in errors.items()}
    best = min(scores, key=lambda s: (scores[s], -s))
    standard_error = statistics.stdev(errors[best]) / math.sqrt(len(errors[best])) if len(errors[best]) > 1 else 0.0
    chosen = min(s for s in STRENGTHS if scores[s] <= scores[best] + standard_error)
    return Strength(chosen, len(networks), scores, standard_error)


@dataclass(frozen=True)
class RowReport:
    where: str
    model: str
    metric: str
    measured: float
    before: float
    after: float
    leave_one_out: float | None  # predicted by a fit to the other rows (None with one row)

    def error(self, value: float | None) -> float | None:
        return None if value is None else (value - self.measured) / self.measured


@dataclass(frozen=True)
class Profile:
    board: str
    values: dict[str, float]
    shipped: dict[str, float]
    rows: tuple[RowReport, ...]
    fitted_to: tuple[dict[str, Any], ...]
    noise: float  # the row noise the fit assumed (log spread)
    strength: Strength  # how far the fit was let move (chosen by cross-validation over networks, or given)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def medians(self) -> dict[str, float | None]:
        def median(kind: str) -> float | None:
            errs = [abs(e) for r in self.rows if (e := r.error(getattr(r, kind))) is not None]
            return statistics.median(errs) if errs else None

        return {kind: median(kind) for kind in ("before", "after", "leave_one_out")}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": PROFILE_KIND,
            "board": self.board,
            "created": self.created,
            "parameters": {k: float(f"{v:.6g}") for k, v in self.values.items()},
            "shipped": {k: float(f"{v:.6g}") for k, v in self.shipped.items()},
            # how far the fit let each parameter move, and the row noise it assumed (docs/latency_model.md)
            "held_toward_shipped": {
                "noise": self.noise,
                "prior_sd": dict(PRIOR_SD),
                "additive_sd": dict(ADDITIVE),
                "strength": self.strength.to_dict(),  # every spread above is scaled by it
            },
            "fitted_to": list(self.fitted_to),
            "errors": {
                "median_abs_before": self.medians()["before"],
                "median_abs_after": self.medians()["after"],
                "median_abs_leave_one_out": self.medians()["leave_one_out"],
                "rows": [
                    {
                        "where": r.where,
                        "model": r.model,
                        "metric": r.metric,
                        "measured": r.measured,
                        "before": r.before,
                        "after": r.after,
                        "leave_one_out": r.leave_one_out,
                    }
                    for r in self.rows
                ],
            },
        }


def fit_profile(
    board: Board,
    rows: Sequence[Measurement],
    db: HwDatabase | None = None,
    base: LatencyParams | None = None,
    strength: float | None = None,
    strength_by: str = "the user (--strength)",
) -> Profile:
    """Fit a profile to `rows` of `board`, with each row's error before, after and left out of the fit. `base`:
    the parameters to start from and hold toward (the shipped fit; a benchmark may give a fit that never saw
    the board). `strength`: given (0-1, by `strength_by`), or None to choose it by cross-validation over networks."""
    base = base or load_params()
    predictor = Predictor(board, rows, db)
    everything = list(range(len(rows)))
    if strength is None:
        chosen = choose_strength(predictor, everything, base)
    else:
        chosen = Strength(strength, len({row.model for row in rows}), given=strength_by)
    strength = chosen.value
    values = fit_values(predictor, everything, base, strength)
    before = predictor.predict(base)
    after = predictor.predict(apply(base, board, values))
    left_out: list[float | None] = []
    for i in everything:
        if len(rows) < 2:
            left_out.append(None)
            continue
        others = fit_values(predictor, [j for j in everything if j != i], base, strength)
        left_out.append(predictor.predict(apply(base, board, others), [i])[0])
    reports = tuple(
        RowReport(row.where, row.model.name, row.metric, row.value, b, a, loo)
        for row, b, a, loo in zip(rows, before, after, left_out, strict=True)
    )
    fitted_to = tuple({**row.to_dict(), "model_digest": file_digest(row.model)} for row in rows)
    return Profile(board.name, values, shipped_values(base), reports, fitted_to, network_spread(), chosen)


def write_profile(profile: Profile, path: Path) -> None:
    path.write_text(yaml.safe_dump(profile.to_dict(), sort_keys=False), encoding="utf-8")


@dataclass(frozen=True)
class LoadedProfile:
    path: Path
    board: str
    values: dict[str, float]
    rows: int
    left_out_log_errors: tuple[float, ...] = ()  # log(left-out prediction / measured) per fitted row
    shipped: dict[str, float] = field(default_factory=dict)  # the shipped fit's values when it was fitted

    @property
    def stale(self) -> list[str]:
        """The parameters whose shipped value has changed since the profile was fitted (a refit of
        hw/latency_model.yaml, or a parameter added since): the profile's values were fitted beside the old ones."""
        if not self.shipped:
            return []  # (a profile that did not record them: nothing to compare)
        now = shipped_values(load_params())
        return [k for k, v in now.items() if k not in self.shipped or not math.isclose(v, self.shipped[k], rel_tol=1e-4)]

    @property
    def label(self) -> str:
        note = ""
        if changed := self.stale:
            note = f"; fitted under an older shipped fit ({', '.join(changed)} changed since): refit it with explore calibrate"
        return f"{self.path} (fitted to {self.rows} measurement(s) on {self.board}{note})"

    def error_model(self, board: Board) -> ErrorModel:
        """The spread of the 80 % intervals under this profile (perf/uncertainty.py)."""
        return profile_error_model(board, self.label, list(self.left_out_log_errors))

    def params(self, board: Board) -> LatencyParams:
        if board.name.lower() != self.board.lower():
            raise ExplorerError(
                f"calibration profile {self.path} was fitted on {self.board}, not {board.name}: its parameters "
                "describe that board; fit one for this board with `explore calibrate`"
            )
        return apply(load_params(), board, self.values)


def read_profile(path: str | Path) -> LoadedProfile:
    file = Path(path)
    if not file.is_file():
        raise ExplorerError(f"{file}: no such calibration profile (make one with `explore calibrate`)")
    try:
        raw = safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExplorerError(f"{file}: not a calibration profile (invalid YAML: {exc})") from exc
    if not isinstance(raw, dict) or raw.get("kind") != PROFILE_KIND:
        raise ExplorerError(f"{file}: not a calibration profile (no `kind: {PROFILE_KIND}`)")
    values = raw.get("parameters")
    if not isinstance(values, dict) or set(values) - set(PARAMETERS):
        raise ExplorerError(f"{file}: parameters: expected a mapping of {', '.join(PARAMETERS)}")
    bad = [
        k
        for k, v in values.items()
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (v == 0 and k not in ADDITIVE)
    ]
    if bad:
        raise ExplorerError(f"{file}: parameters: {', '.join(bad)} must be positive numbers ({', '.join(ADDITIVE)} may be 0)")
    left_out = []
    errors = raw.get("errors")
    for row in errors.get("rows", []) if isinstance(errors, dict) else []:
        if not isinstance(row, dict):
            continue
        measured, predicted = row.get("measured"), row.get("leave_one_out")
        if isinstance(measured, (int, float)) and isinstance(predicted, (int, float)) and measured > 0 and predicted > 0:
            left_out.append(math.log(predicted / measured))
    values_read = {k: float(v) for k, v in values.items()}
    then = raw.get("shipped")
    shipped = {k: float(v) for k, v in then.items() if isinstance(v, (int, float))} if isinstance(then, dict) else {}
    fitted_to = len(raw.get("fitted_to") or [])
    return LoadedProfile(file, str(raw.get("board", "")), values_read, fitted_to, tuple(left_out), shipped)
