"""Read a study's trials from its storage into report rows."""

from __future__ import annotations

import math
from pathlib import Path

from explorer.export.measure import read_measured
from explorer.report.data import ParetoInfo, TrialRow, pareto_info
from explorer.study.config import StudyConfig
from explorer.study.runner import load_existing


def load_info(cfg: StudyConfig) -> ParetoInfo:
    study = load_existing(cfg)
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = tuple(float(v) for v in t.values) if t.values else ()
        constraints = t.constraints
        rows.append(
            TrialRow(
                number=t.number,
                state=t.state.name,
                values=values,
                feasible=all(v <= 0 for v in constraints.values()) if constraints else bool(values),
                params=dict(t.params),
                metrics={k: (float(v) if v is not None else math.nan) for k, v in t.user_attrs.get("metrics", {}).items()},
                sources=dict(t.user_attrs.get("sources", {})),
                design=dict(t.user_attrs.get("design_point", {})),
                details=dict(t.user_attrs.get("details", {})),
                fail_reason=str(t.user_attrs.get("fail_reason", "")),
                measured=read_measured(Path(t.user_attrs["artifacts"])) if "artifacts" in t.user_attrs else {},
            )
        )
    return pareto_info([(o.metric, o.direction) for o in cfg.objectives], rows)
