"""Are the 80 % intervals honest? The share of published rows that fall inside the interval the explorer gives
for them (issue #14), for the rows the latency model was fitted to and for the rows it never saw.

Each row is estimated as a user would get it: its board, DPU configuration and threads, the shipped fit and
its error model (explorer/perf/uncertainty.py). DPU-only rows take the DPU side's spread, Arm rows the Arm's.

The spreads on fitted boards come from the fitted rows each predicted by a fit that never saw its network
(bench/latency_fit.py `held_back`): a user's network is one the fit has not seen. Those rows are checked
too, each network against the spread the other networks' held-back rows give (so no row sets the spread it
is judged by).

Run: python bench/interval_coverage.py   (about 3 minutes: one refit per fitted network)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference/ sits beside bench/

from explorer.hardware.config import parse_dpu_config
from explorer.hardware.database import load_database
from explorer.perf.estimate import EstimateOptions, Estimator
from explorer.perf.params import load_params
from explorer.perf.uncertainty import Z80, shipped_error_model
from reference.published import ROWS, reference_graph
from reference.published import predict as predict_row

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_fit import held_back, spread  # the refit without each network, and the spread the intervals use


def main() -> None:
    db = load_database()
    inside: dict[tuple[str, bool], list[bool]] = {}
    print(f"{'row':58s} {'published':>9s} {'model':>9s} {'80% interval':>21s}  in?  use")
    for row in ROWS:
        if row.metric == "cpu_ms":
            table_sigma = shipped_error_model(db.board("zcu102")).sigma_cpu  # the Arm kinds are fitted ones
            predicted, sigma = predict_row(row), table_sigma
        else:
            board = db.board(row.board)
            config = parse_dpu_config(row.dpu, board, db=db)
            est = Estimator(reference_graph(row.model), board, db=db).estimate(config, None, EstimateOptions(threads=row.threads))
            predicted = float(getattr(est, row.metric))
            errors = shipped_error_model(board)
            sigma = errors.dpu_sigma(config.arch) if row.metric == "dpu_ms" else est.intervals.sigma[row.metric]  # type: ignore[union-attr]
        low, high = predicted * math.exp(-Z80 * sigma), predicted * math.exp(Z80 * sigma)
        hit = low <= row.published <= high
        side = "Arm" if row.metric == "cpu_ms" else "DPU"
        inside.setdefault((side, row.fitted), []).append(hit)
        print(
            f"{row.name:58s} {row.published:9.2f} {predicted:9.2f} {low:10.2f}-{high:<10.2f} {'yes' if hit else 'NO ':3s}  "
            f"{'fit' if row.fitted else 'check'}"
        )
    print()
    for (side, fitted), hits in sorted(inside.items()):
        kind = "fitted rows" if fitted else "rows never fitted"
        print(f"{side} {kind:18s}: {sum(hits)}/{len(hits)} inside ({sum(hits) / len(hits):.0%}; target near 80%)")
    for dpu_side, rows in held_back(load_params()).items():
        hits = []
        for model in {row.model for row, _ in rows}:
            others = [math.log(p / row.published) for row, p in rows if row.model != model]
            sigma = spread(others)
            hits += [abs(math.log(p / row.published)) <= Z80 * sigma for row, p in rows if row.model == model]
        side = "DPU" if dpu_side else "Arm"
        share = f"{sum(hits)}/{len(hits)} inside ({sum(hits) / len(hits):.0%}; target near 80%)"
        print(f"{side} fitted rows, each held back with its network: {share}")


if __name__ == "__main__":
    main()
