"""What a study stores for each trial, in one place: `TrialRecord` writes a design point's result into an
Optuna trial and reads it back from a FrozenTrial. The runner, the report, the export and the commands
use it instead of user-attribute keys; `select_trial` picks a trial to export or measure.

Keys in Optuna's user attributes: design_point, metrics (None for a value that is not finite), sources
(metric -> "model" | "measured"), details (`DesignDetails`), artifacts (the trial's folder), fail_reason,
traceback, same_as (the trial whose result a repeated design point reused), worker and suggested (the
runner's bookkeeping, see runner.py and store.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from explorer.errors import ExplorerError
from explorer.study.config import StudyConfig

DESIGN_POINT, METRICS, SOURCES, DETAILS, ARTIFACTS = "design_point", "metrics", "sources", "details", "artifacts"
FAIL_REASON, TRACEBACK, SAME_AS = "fail_reason", "traceback", "same_as"
PROPOSED_BY = "proposed_by"  # a queued trial: what proposed it (study/completion.py)
RESULT_KEYS = (DESIGN_POINT, METRICS, SOURCES, DETAILS, ARTIFACTS)  # what a reused result copies


@dataclass(frozen=True)
class SubgraphSummary:
    device: str  # "DPU" | "CPU"
    layers: tuple[str, ...]
    time_ms: float
    host_ms: float


@dataclass(frozen=True)
class DesignDetails:
    """What the report and the export show of a design point beside its metrics."""

    fits: bool
    fingerprint: str
    target: str
    partition: tuple[SubgraphSummary, ...]
    cpu_reasons: dict[str, str]
    latency_split_ms: dict[str, float]
    intervals: dict[str, list[float]] = field(default_factory=dict)  # 80 % intervals: metric -> [low, high]
    # per layer (perf/compare.py to_columns): A = the unpruned model on this DPU, B = this design (estimates)
    layers: dict[str, list[Any]] = field(default_factory=dict)
    kept_channels: str = ""  # digest of the channels the measured model kept (compress/context.py kept_digest)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what `asdict` gives, without its deep copy of the per-layer columns: a study writes one per trial)."""
        return {
            "fits": self.fits,
            "fingerprint": self.fingerprint,
            "target": self.target,
            "partition": [{**asdict(s), "layers": list(s.layers)} for s in self.partition],
            "cpu_reasons": dict(self.cpu_reasons),
            "latency_split_ms": dict(self.latency_split_ms),
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "layers": {k: list(v) for k, v in self.layers.items()},
            "kept_channels": self.kept_channels,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DesignDetails:
        return cls(
            fits=bool(data.get("fits", False)),
            fingerprint=str(data.get("fingerprint", "")),
            target=str(data.get("target", "")),
            partition=tuple(
                SubgraphSummary(str(s["device"]), tuple(s["layers"]), float(s["time_ms"]), float(s.get("host_ms", 0.0)))
                for s in data.get("partition", [])
            ),
            cpu_reasons={str(k): str(v) for k, v in data.get("cpu_reasons", {}).items()},
            latency_split_ms={str(k): float(v) for k, v in data.get("latency_split_ms", {}).items()},
            intervals={
                str(k): [float(x) for x in v] for k, v in data.get("intervals", {}).items() if isinstance(v, list) and len(v) == 2
            },
            layers={str(k): list(v) for k, v in data.get("layers", {}).items() if isinstance(v, list)},
            kept_channels=str(data.get("kept_channels", "")),
        )


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE | FAIL | RUNNING | PRUNED | WAITING
    params: dict[str, Any]
    values: tuple[float, ...]
    constraints: dict[str, float]
    design_point: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # NaN where the stored value was not finite
    sources: dict[str, str] = field(default_factory=dict)
    details: DesignDetails | None = None
    artifacts: Path | None = None
    fail_reason: str = ""
    same_as: int | None = None
    proposed_by: str = ""  # "hardware completion of trial N" for a queued trial; "" for a sampled one

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE" and bool(self.design_point)

    @property
    def feasible(self) -> bool:
        """Every constraint <= 0 (a complete trial without constraints is feasible)."""
        if self.constraints:
            return all(v <= 0 for v in self.constraints.values())
        return bool(self.values)

    @classmethod
    def read(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        details = attrs.get(DETAILS)
        return cls(
            number=trial.number,
            state=trial.state.name,
            params=dict(trial.params),
            values=tuple(float(v) for v in trial.values) if trial.values else (),
            constraints=dict(trial.constraints or {}),
            design_point=dict(attrs.get(DESIGN_POINT, {})),
            metrics={k: (float(v) if v is not None else math.nan) for k, v in attrs.get(METRICS, {}).items()},
            sources=dict(attrs.get(SOURCES, {})),
            details=DesignDetails.from_dict(details) if isinstance(details, dict) else None,
            artifacts=Path(attrs[ARTIFACTS]) if ARTIFACTS in attrs else None,
            fail_reason=str(attrs.get(FAIL_REASON, "")),
            same_as=attrs.get(SAME_AS),
            proposed_by=str(attrs.get(PROPOSED_BY, "")),
        )


def write_result(
    trial: optuna.Trial,
    design_point: dict[str, Any],
    metrics: dict[str, float],
    sources: dict[str, str],
    details: DesignDetails,
    artifacts: Path,
) -> None:
    """Store a design point's result in `trial` (Optuna's stored attributes are JSON: NaN and inf become None)."""
    trial.set_user_attr(DESIGN_POINT, design_point)
    trial.set_user_attr(METRICS, {k: (v if math.isfinite(v) else None) for k, v in metrics.items()})
    trial.set_user_attr(SOURCES, sources)
    trial.set_user_attr(DETAILS, details.to_dict())
    trial.set_user_attr(ARTIFACTS, str(artifacts))


def copy_result(trial: optuna.Trial, twin: optuna.trial.FrozenTrial) -> None:
    """Store `twin`'s result (and its constraints) in `trial`, naming it in `same_as`."""
    for name, value in twin.constraints.items():
        trial.set_constraint(name, value)
    for key in RESULT_KEYS:
        if key in twin.user_attrs:
            trial.set_user_attr(key, twin.user_attrs[key])
    trial.set_user_attr(SAME_AS, twin.number)


def record_failure(trial: optuna.Trial, reason: str, traceback_text: str | None = None) -> None:
    trial.set_user_attr(FAIL_REASON, reason)
    if traceback_text:
        trial.set_user_attr(TRACEBACK, traceback_text[-4000:])


@dataclass(frozen=True)
class Selected:
    record: TrialRecord
    why: str


def select_trial(cfg: StudyConfig, records: list[TrialRecord], number: int | None = None, best: str | None = None) -> Selected:
    """A complete trial by number, or the feasible complete trial with the best value of the objective `best`."""
    complete = [r for r in records if r.complete]
    if number is not None:
        found = [r for r in records if r.number == number]
        if not found:
            raise ExplorerError(f"study {cfg.store.study_name!r} has no trial {number} (trials 0..{len(records) - 1})")
        if not found[0].complete:
            reason = found[0].fail_reason or found[0].state.lower()
            raise ExplorerError(f"trial {number} did not finish ({reason}); choose a finished trial")
        return Selected(found[0], f"trial {number}")
    if best is None:
        raise ExplorerError("give --trial N or --best OBJECTIVE")
    directions = {o.metric: o.direction for o in cfg.objectives}
    if best not in directions:
        raise ExplorerError(f"--best {best}: not an objective of this study; choose one of {', '.join(directions)}")
    feasible = [r for r in complete if r.feasible]
    if not feasible:
        raise ExplorerError(
            f"study {cfg.store.study_name!r} has {len(complete)} finished trials and none is feasible (resources over the "
            "ceilings, or a bound missed); run more trials, or export one anyway with --trial N"
        )
    sign = 1.0 if directions[best] == "minimize" else -1.0

    def key(r: TrialRecord) -> tuple[float, int]:
        value = r.metrics.get(best, math.nan)
        return (sign * value if math.isfinite(value) else math.inf, r.number)

    chosen = min(feasible, key=key)
    return Selected(chosen, f"best {best} ({directions[best]}) among {len(feasible)} feasible trials: trial {chosen.number}")
