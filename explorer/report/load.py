"""Read a study's trials from its storage into report rows."""

from __future__ import annotations

from explorer.export.measure import read_measured
from explorer.report.data import ParetoInfo, TrialRow, pareto_info
from explorer.study.config import StudyConfig
from explorer.study.record import TrialRecord
from explorer.study.runner import load_existing


def load_info(cfg: StudyConfig) -> ParetoInfo:
    rows = []
    for trial in load_existing(cfg).get_trials(deepcopy=False):
        record = TrialRecord.read(trial)
        rows.append(
            TrialRow(
                number=record.number,
                state=record.state,
                values=record.values,
                feasible=record.feasible,
                params=record.params,
                metrics=record.metrics,
                sources=record.sources,
                design=record.design_point,
                details=record.details.to_dict() if record.details else {},
                fail_reason=record.fail_reason,
                measured=read_measured(record.artifacts) if record.artifacts else {},
                proposed_by=record.proposed_by,
            )
        )
    return pareto_info([(o.metric, o.direction) for o in cfg.objectives], rows)
