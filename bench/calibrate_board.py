"""`explore calibrate` on published rows: fit a profile to some rows of one board, predict the others.

Cases (rows of reference/published_rows.yaml, docs/calibration.md):
- KV260 (Model Zoo, 1 x B4096 @ 300): fit on ResNet-50 and MobileNetV2 (single and multi), predict
  Inception-v1 and YOLOv3;
- ZCU102 (Model Zoo, 3 x B4096 @ 281): the same split;
- ZCU102 (PG338 Table 13, 3 x B4096 @ 287, 16 threads; rows the shipped fit never saw): fit on ResNet-50
  and Inception-v1, predict the other three.
The shipped fit already saw the first two boards' rows, so there the profile can gain little. So the first
two cases run twice: from the shipped fit, and from the fit refitted without any row of that board (the
situation of a user whose board the fit never saw; PG338 Table 13 is such a case already). Each fitted row
also gets its leave-one-out prediction.
Which two networks a user measures is theirs to choose: for every case the script then fits every pair of its
networks (six splits of the Model Zoo's four, ten of Table 13's five). Per case it prints:
- the mean over the splits of the held-out median |error|, before and after;
- in how many splits the profile was better and worse;
- the strength the cross-validation over the two fitted networks chose in each split;
- the result at full strength (the priors at their full width, as before that cross-validation);
- the held-out error of a profile fitted to every row of the case, the held-out ones included: the most a
  board-level profile can do on those rows.

Run: python bench/calibrate_board.py
"""

from __future__ import annotations

import csv
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reference/ sits beside bench/

from explorer.hardware.database import HwDatabase, load_database
from explorer.perf.calibrate import Predictor, apply, choose_strength, fit_profile, fit_values
from explorer.perf.measurements import read_measurements
from explorer.perf.params import LatencyParams, load_params
from reference.published import ROWS, Row
from reference.zoo import REFERENCE_MODELS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_fit import refit  # the shipped fit's own refit, on fewer rows

CASES = (  # title, board, tag of its rows, rows fitted, rows held out, start from a fit that never saw the board
    ("KV260 Model Zoo", "kv260", "KV260", ("ResNet-50", "MobileNetV2,"), ("Inception-v1", "YOLOv3"), False),
    ("ZCU102 Model Zoo @281", "zcu102", "3xB4096@281", ("ResNet-50", "MobileNetV2,"), ("Inception-v1", "YOLOv3"), False),
    ("KV260 Model Zoo, fit without KV260", "kv260", "KV260", ("ResNet-50", "MobileNetV2,"), ("Inception-v1", "YOLOv3"), True),
    (
        "ZCU102 Model Zoo @281, fit without ZCU102",
        "zcu102",
        "3xB4096@281",
        ("ResNet-50", "MobileNetV2,"),
        ("Inception-v1", "YOLOv3"),
        True,
    ),
    (
        "ZCU102 PG338 Table 13 @287",
        "zcu102",
        "3xB4096@287",
        ("ResNet-50", "Inception-v1"),
        ("MobileNetV2", "SSD", "YOLOv3"),
        False,
    ),
)


def without_board(params: LatencyParams, board: str) -> LatencyParams:
    """The shipped fit refitted without any DPU row of `board` (the published rows name their board)."""
    return refit(params, tuple(r for r in ROWS if board.lower() not in r.name.lower() or r.metric == "cpu_ms"))


def write_csv(rows: list[Row], folder: Path, name: str) -> Path:
    fields = sorted({k for row in rows for k in row.dpu})
    path = folder / f"{name}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "fps", "threads", *fields, "source"])
        for row in rows:
            model = folder / f"{row.model}.onnx"
            if not model.exists():
                onnx.save(REFERENCE_MODELS[row.model](), str(model))
            writer.writerow([model.name, row.published, row.threads or 1, *(row.dpu.get(f, "") for f in fields), row.source])
    return path


def main() -> None:
    db = load_database()
    shipped = load_params()
    bases = {board: without_board(shipped, board) for _, board, _, _, _, unseen in CASES if unseen}  # one refit each
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for title, board_name, tag, fit_names, held_names, unseen in CASES:
            board = db.board(board_name)
            base = bases[board_name] if unseen else shipped
            chosen = [r for r in ROWS if tag in r.name and r.metric.startswith("fps")]
            fit_rows = [r for r in chosen if r.name.startswith(fit_names)]
            held_rows = [r for r in chosen if r.name.startswith(held_names)]
            fit = read_measurements(write_csv(fit_rows, folder, f"{board_name}_fit"))
            held = read_measurements(write_csv(held_rows, folder, f"{board_name}_held"))
            profile = fit_profile(board, fit, db, base)
            predictor = Predictor(board, held, db)
            before = predictor.predict(base)
            after = predictor.predict(apply(base, board, profile.values))
            print(f"\n{title}: fitted to {len(fit)} rows, predicting {len(held)} held-out rows")
            print(f"  {'row':56s} {'measured':>9s} {'before':>8s} {'after':>8s} {'left out':>8s}")
            for r, report in zip(fit_rows, profile.rows, strict=True):
                loo = report.error(report.leave_one_out)
                print(
                    f"  fit  {r.name:51s} {r.published:9.1f} {report.error(report.before):+8.1%} "
                    f"{report.error(report.after):+8.1%} {loo:+8.1%}"
                )
            errs_before, errs_after = [], []
            for r, b, a in zip(held_rows, before, after, strict=True):
                eb, ea = (b - r.published) / r.published, (a - r.published) / r.published
                errs_before.append(abs(eb))
                errs_after.append(abs(ea))
                print(f"  held {r.name:51s} {r.published:9.1f} {eb:+8.1%} {ea:+8.1%}")
            medians = profile.medians()
            print(
                f"  median |error| held-out: before {statistics.median(errs_before):.1%}, after "
                f"{statistics.median(errs_after):.1%}; fitted rows left out: {medians['leave_one_out']:.1%} "
                f"(before {medians['before']:.1%})"
            )
            print("  profile: " + ", ".join(f"{k} {profile.shipped[k]:.4g}->{v:.4g}" for k, v in profile.values.items()))
            scores = ", ".join(f"{k:g}: {v:.2g}" for k, v in profile.strength.scores.items())
            error = profile.strength.standard_error
            print(f"  strength {profile.strength.value:g} (mean squared log error, each network left out: {scores}; ", end="")
            print(f"standard error {error:.2g})")

    every_split(db, shipped, bases)


NETWORKS = ("ResNet-50", "MobileNetV2,", "Inception-v1", "YOLOv3")  # the Model Zoo rows'
TABLE_13 = ("ResNet-50", "Inception-v1", "MobileNetV2", "SSD", "YOLOv3")  # PG338 Table 13's rows


def held_error(predictor: Predictor, base: LatencyParams, values: dict[str, float], held: list[int]) -> float:
    """Median |error| of the rows `held` under the profile `values`."""
    after = predictor.predict(apply(base, predictor.board, values), held)
    return statistics.median(abs(a / predictor.rows[i].value - 1) for a, i in zip(after, held, strict=True))


def every_split(db: HwDatabase, shipped: LatencyParams, bases: dict[str, LatencyParams]) -> None:
    """Every pair of networks fitted, the others predicted, for every case: the four Model Zoo networks (six
    pairs), PG338 Table 13's five (ten pairs). `bases`: the fit without each board, by board name."""
    print("\nEvery split (fit two networks, predict the others): mean held-out median |error| over the splits")
    with tempfile.TemporaryDirectory() as tmp:
        for title, board_name, tag, _, _, unseen in CASES:
            board = db.board(board_name)
            base = bases[board_name] if unseen else shipped
            rows = [r for r in ROWS if tag in r.name and r.metric.startswith("fps")]
            predictor = Predictor(board, read_measurements(write_csv(rows, Path(tmp), board_name)), db)
            before = predictor.predict(base)
            medians: list[tuple[float, float, float]] = []  # held-out median |error|: before, after, at full strength
            strengths = []
            # the most a board-level profile can do: fitted to every row, the held-out ones included
            everything = fit_values(predictor, list(range(len(rows))), base)
            floor = []
            networks = TABLE_13 if tag == "3xB4096@287" else NETWORKS
            pairs = list(itertools.combinations(networks, 2))
            for pair in pairs:
                fitted = [i for i, r in enumerate(rows) if r.name.startswith(pair)]
                held = [i for i in range(len(rows)) if i not in fitted]
                strength = choose_strength(predictor, fitted, base).value
                strengths.append(f"{strength:g}")
                medians.append(
                    (
                        statistics.median(abs(before[i] / rows[i].published - 1) for i in held),
                        held_error(predictor, base, fit_values(predictor, fitted, base, strength), held),
                        held_error(predictor, base, fit_values(predictor, fitted, base), held),
                    )
                )
                floor.append(held_error(predictor, base, everything, held))
            better = sum(a < b for b, a, _ in medians)
            worse = sum(a > b for b, a, _ in medians)
            print(
                f"  {title:42s} before {statistics.fmean(m[0] for m in medians):.1%}, after "
                f"{statistics.fmean(m[1] for m in medians):.1%}: better in {better}, worse in {worse} of {len(pairs)} "
                f"(strengths {' '.join(strengths)}; at full strength {statistics.fmean(m[2] for m in medians):.1%}, "
                f"better in {sum(f < b for b, _, f in medians)}, worse in {sum(f > b for b, _, f in medians)})"
            )
            print(f"  {'':42s} a profile fitted to every row, held-out ones included: {statistics.fmean(floor):.1%}")


if __name__ == "__main__":
    main()
