"""Draw a study's ParetoInfo with Plotly and write one self-contained HTML page (and a CSV via pandas)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from explorer import __version__
from explorer.datafiles import data_path
from explorer.hardware.database import RESOURCE_KINDS, load_database
from explorer.perf.compare import largest_differences
from explorer.report.data import ParetoInfo, TrialRow, pareto_info
from explorer.report.load import load_info
from explorer.study.config import StudyConfig


def _label(metric: str, row_sources: dict[str, str] | None = None) -> str:
    source = (row_sources or {}).get(metric, "model")
    return f"{metric} ({'measured' if source == 'measured' else 'estimate'})"


def figures(info: ParetoInfo) -> dict[str, go.Figure]:
    done = info.complete
    pareto = set(info.pareto)
    sources = done[0].sources if done else {}
    out: dict[str, go.Figure] = {}
    names = [m for m, _ in info.objectives]
    groups = [
        ("Pareto-optimal", [r for r in done if r.number in pareto], "#d62728", 10),
        ("feasible", [r for r in done if r.feasible and r.number not in pareto], "#1f77b4", 6),
        ("infeasible", [r for r in done if not r.feasible], "#bbbbbb", 5),
    ]
    for a, b in itertools.combinations(range(len(names)), 2):
        fig = go.Figure()
        for label, rows, color, size in groups:
            fig.add_trace(
                go.Scatter(
                    x=[r.values[a] for r in rows],
                    y=[r.values[b] for r in rows],
                    mode="markers",
                    name=label,
                    marker={"color": color, "size": size},
                    text=[f"trial {r.number}" for r in rows],
                    error_x=_error_bars(rows, names[a], a),
                    error_y=_error_bars(rows, names[b], b),
                )
            )
        _add_measured(fig, done, names, a, b)
        fig.update_layout(
            title=f"{names[a]} vs {names[b]}",
            xaxis_title=_label(names[a], sources),
            yaxis_title=_label(names[b], sources),
            height=420,
            margin={"t": 50},
        )
        out[f"pareto_{names[a]}_{names[b]}"] = fig
    if len(names) >= 3:
        fig = go.Figure()
        for label, rows, color, size in groups:
            fig.add_trace(
                go.Scatter3d(
                    x=[r.values[0] for r in rows],
                    y=[r.values[1] for r in rows],
                    z=[r.values[2] for r in rows],
                    mode="markers",
                    name=label,
                    marker={"color": color, "size": size / 2},
                )
            )
        fig.update_layout(
            title="Pareto front (3-D)",
            height=560,
            scene={"xaxis_title": names[0], "yaxis_title": names[1], "zaxis_title": names[2]},
        )
        out["pareto_3d"] = fig
    if done:
        dims = []
        for key in sorted({k for r in done for k in r.params}):
            values = [r.params.get(key) for r in done]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values if v is not None):
                dims.append({"label": key, "values": [v if v is not None else 0 for v in values]})
            else:
                labels = sorted({str(v) for v in values})
                dims.append(
                    {
                        "label": key,
                        "values": [labels.index(str(v)) for v in values],
                        "tickvals": list(range(len(labels))),
                        "ticktext": labels,
                    }
                )
        dims.append({"label": names[0], "values": [r.values[0] for r in done]})
        fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": [r.values[0] for r in done], "colorscale": "Viridis"}))
        fig.update_layout(title=f"Parameters (colour: {names[0]})", height=480, margin={"l": 80, "r": 80})
        out["parallel_coordinates"] = fig
    if info.hypervolume:
        fig = go.Figure(go.Scatter(x=[n for n, _ in info.hypervolume], y=[h for _, h in info.hypervolume], mode="lines+markers"))
        fig.update_layout(
            title="Hypervolume of the feasible front over trials (normalised objectives)",
            xaxis_title="trial",
            yaxis_title="hypervolume",
            height=360,
        )
        out["hypervolume"] = fig
    return out


# Metrics that count things: printed as integers with thousands separators (BRAM36 may end in half a block).
COUNTS = {"lut", "ff", "dsp", "uram", "bram36", "macs", "params", "dpu_subgraphs"}


MEASURED_RUN = ("fps_single", "fps_multi", "latency_ms")  # what a board run (explore import-run) measures


def _measured_value(row: TrialRow, metric: str, axis: int) -> float:
    """The board-measured value of an axis where there is one, else the trial's own value."""
    run = row.measured.get("run", {})
    value = run.get(metric) if metric in MEASURED_RUN else None
    if metric == "latency_ms" and isinstance(value, dict):
        value = value.get("median")
    return float(value) if isinstance(value, (int, float)) else row.values[axis]


def _add_measured(fig: go.Figure, rows: list[TrialRow], names: list[str], a: int, b: int) -> None:
    """Trials run on the board: the measured point beside the predicted one, joined by a line."""
    measured = [r for r in rows if r.measured.get("run") and (names[a] in MEASURED_RUN or names[b] in MEASURED_RUN)]
    if not measured:
        return
    xs: list[float | None] = []
    ys: list[float | None] = []
    for r in measured:
        xs += [r.values[a], _measured_value(r, names[a], a), None]
        ys += [r.values[b], _measured_value(r, names[b], b), None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#2ca02c", "dash": "dot"}, name="predicted -> measured"))
    fig.add_trace(
        go.Scatter(
            x=[_measured_value(r, names[a], a) for r in measured],
            y=[_measured_value(r, names[b], b) for r in measured],
            mode="markers",
            name="measured on the board",
            marker={"color": "#2ca02c", "size": 11, "symbol": "diamond"},
            text=[f"trial {r.number}, measured on {r.measured['run'].get('board', 'the board')}" for r in measured],
        )
    )


def _error_bars(rows: list[TrialRow], metric: str, axis: int) -> dict[str, Any] | None:
    """The 80 % intervals of `metric` as asymmetric error bars (estimates that have them: FPS and latency)."""
    spans = [r.details.get("intervals", {}).get(metric) for r in rows]
    if not rows or any(span is None for span in spans):
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": [max(0.0, span[1] - r.values[axis]) for r, span in zip(rows, spans, strict=True) if span],
        "arrayminus": [max(0.0, r.values[axis] - span[0]) for r, span in zip(rows, spans, strict=True) if span],
        "thickness": 1,
        "width": 0,
    }


def _fmt(value: Any, metric: str = "") -> str:
    """Numbers for the page; the template escapes whatever this returns (autoescape is on)."""
    if isinstance(value, float) and math.isfinite(value) and metric in COUNTS:
        return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def column_sources(info: ParetoInfo, columns: list[str]) -> dict[str, str]:
    """What each column is, read from the trials' own source records: "measured" or "estimate" (model)."""
    out = {}
    for column in columns:
        kinds = Counter(r.sources.get(column, "model") for r in info.complete if column in r.metrics)
        out[column] = "measured" if kinds and kinds.most_common(1)[0][0] == "measured" else "estimate"
    return out


def _objective_key(info: ParetoInfo, number: int, by_number: dict[int, TrialRow]) -> tuple[float, ...]:
    metrics = by_number[number].metrics
    return tuple(round(float(metrics.get(m, math.nan)), 9) for m, _ in info.objectives)


def pareto_rows(info: ParetoInfo, capacity: dict[str, int]) -> list[dict[str, Any]]:
    """One row per distinct objective vector of the front; trials that reach the same one are listed together
    (the sampler proposes some design points again, and some designs differ only where it changes nothing)."""
    rows = []
    by_number = {r.number: r for r in info.rows}
    groups: dict[tuple[float, ...], list[int]] = {}
    for number in info.pareto:
        groups.setdefault(_objective_key(info, number, by_number), []).append(number)
    for numbers in groups.values():
        number = numbers[0]
        r: TrialRow = by_number[number]
        dpu = r.design.get("dpu", {})
        m = r.metrics
        rows.append(
            {
                "trial": r.number,
                "trials": numbers,
                "proposed_by": r.proposed_by or "the sampler",
                "dpu": f"{dpu.get('arch')} x{dpu.get('cores')} @{dpu.get('clock_mhz')} MHz, RAM {dpu.get('ram_usage')}, "
                f"DSP {dpu.get('dsp_usage')}, URAM {dpu.get('uram_per_core')}",
                "pruning": ", ".join(f"{g}={t:.2f}" for g, t in sorted(r.design.get("prune", {}).items())) or "none",
                "split": "none" if r.design.get("split") is None else r.design.get("split"),
                "cpu": r.design.get("cpu_precision"),
                "metrics": m,
                "sources": r.sources,
                "details": r.details,
                "layers": layer_view(r.details.get("layers", {}), bool(r.design.get("prune"))),
                "bars": [
                    {
                        "kind": k,
                        "used": m.get(k, 0.0),
                        "capacity": capacity[k],
                        "percent": 100.0 * m.get(k, 0.0) / capacity[k] if capacity[k] else 0.0,
                    }
                    for k in RESOURCE_KINDS
                ],
            }
        )
    return rows


LAYERS_LISTED = 8  # layers under a design's per-layer plot: those whose DPU time differs most


def layer_view(columns: dict[str, list[Any]], pruned: bool) -> dict[str, Any]:
    """What a design's details show per layer (seed 002, Figures 12 and 13): the plot's data (layer names escaped:
    Plotly reads a few HTML tags in labels) and, for a pruned design, the layers whose time pruning changed most
    with the verdict, and how many pruned layers run shorter. Empty for a trial recorded without them."""
    if not columns.get("name"):
        return {}
    data = {
        "names": [escape(str(n)) for n in columns["name"]],
        "time_b": columns.get("time_b_ms", []),
        "gops_b": columns.get("gops_b", []),
        "time_a": columns.get("time_a_ms", []) if pruned else [],
        "gops_a": columns.get("gops_a", []) if pruned else [],
    }
    verdicts = [v for v in columns.get("verdict", []) if v]
    return {
        "data": data,
        "pruned": pruned,
        "table": largest_differences(columns, LAYERS_LISTED) if pruned else [],
        "pruned_layers": len(verdicts),
        "shorter": sum(v == "shorter" for v in verdicts),
    }


def _fidelity(row: TrialRow, metric: str, measured: bool) -> str:
    if measured and metric in MEASURED_RUN:
        return "measured on the board"
    return "estimate" if row.sources.get(metric, "model") == "model" else "measured"


def reranked_rows(info: ParetoInfo) -> list[dict[str, Any]]:
    """The feasible front again, with each objective measured on the board where a trial was (FPS, latency):
    the study's measured fidelity beside its model fidelity. Empty when nothing was measured."""
    names = [m for m, _ in info.objectives]
    if not any(r.measured.get("run") for r in info.complete) or not any(n in MEASURED_RUN for n in names):
        return []
    rows = [
        dataclasses.replace(r, values=tuple(_measured_value(r, m, i) for i, m in enumerate(names)))
        if len(r.values) == len(names)
        else r  # a failed trial has no values
        for r in info.rows
    ]
    again = pareto_info(info.objectives, rows)
    by_number = {r.number: r for r in rows}
    out = []
    for number in again.pareto:
        r = by_number[number]
        measured = bool(r.measured.get("run"))
        out.append(
            {
                "trial": number,
                "was_pareto": number in info.pareto,
                "values": [
                    {
                        "metric": m,
                        "value": v,
                        "source": _fidelity(r, m, measured),
                    }
                    for m, v in zip(names, r.values, strict=True)
                ],
            }
        )
    return out


def measured_rows(info: ParetoInfo) -> list[dict[str, Any]]:
    """Trials with a measured build or board run, each measurement beside its estimate."""
    rows = []
    for r in info.rows:
        if not r.measured:
            continue
        build, run = r.measured.get("build", {}), r.measured.get("run", {})
        pairs: list[dict[str, Any]] = []
        for kind in RESOURCE_KINDS:
            if kind in build.get("resources", {}):
                pairs.append({"what": kind, "estimate": r.metrics.get(kind), "measured": build["resources"][kind]})
        if build:
            pairs.append({"what": "DPU clock (MHz)", "estimate": build.get("clock_mhz"), "measured": build.get("dpu_fmax_mhz")})
        if run:
            pairs.append({"what": "fps_single", "estimate": r.metrics.get("fps_single"), "measured": run.get("fps_single")})
            pairs.append({"what": "fps_multi", "estimate": r.metrics.get("fps_multi"), "measured": run.get("fps_multi")})
            pairs.append(
                {
                    "what": "latency_ms",
                    "estimate": r.metrics.get("latency_ms"),
                    "measured": run.get("latency_ms", {}).get("median"),
                }
            )
        for pair in pairs:
            e, m = pair["estimate"], pair["measured"]
            pair["error_percent"] = (
                100.0 * (e - m) / m if isinstance(e, int | float) and isinstance(m, int | float) and m else None
            )
        rows.append(
            {
                "trial": r.number,
                "build_source": build.get("source", ""),
                "timing_met": build.get("timing_met"),
                "run_source": f"board {run.get('board', '')}, {run.get('runtime', '')}, {run.get('frames', '')} frames"
                if run
                else "",
                "pairs": pairs,
            }
        )
    return rows


def write_report(cfg: StudyConfig, output: Path | None = None) -> Path:
    info = load_info(cfg)
    out = output or cfg.store.output / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    device = load_database().board(cfg.board).device
    capacity = {k: device.capacity(k) for k in RESOURCE_KINDS}
    figs = figures(info)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_path("reports"))),
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # every value is user data (study, model, metric and layer names, imported strings)
    )
    env.filters["fmt"] = _fmt
    columns = [
        "fps_multi",
        "fps_single",
        "latency_ms",
        *[m for m, _ in info.objectives if m not in ("fps_multi", "fps_single", "latency_ms")],
        "lut",
        "bram36",
        "dsp",
        "headroom_lut",
        "headroom_bram36",
        "headroom_dsp",
    ]
    accuracy_columns = sorted({k for r in info.complete for k, s in r.sources.items() if s == "measured"})
    metric_columns = [c for c in dict.fromkeys(columns) if c not in accuracy_columns]
    sources = column_sources(info, [*metric_columns, *accuracy_columns])
    page = env.get_template("report.html.j2").render(
        version=__version__,
        study=cfg.store.study_name,
        board=cfg.board,
        device=device.name,
        model=str(cfg.model.path),
        objectives=info.objectives,
        plotly_js=get_plotlyjs(),
        figures={name: json.loads(fig.to_json()) for name, fig in figs.items()},
        counts={
            "trials": len(info.rows),
            "complete": len(info.complete),
            "feasible": sum(r.feasible for r in info.complete),
            "failed": sum(r.state == "FAIL" for r in info.rows),
            "pareto": len(info.pareto),
        },
        failures=[(r.number, r.fail_reason) for r in info.rows if r.state == "FAIL"][:20],
        rows=(rows := pareto_rows(info, capacity)),
        layer_data={str(r["trial"]): r["layers"]["data"] for r in rows if r["layers"]},
        measured=measured_rows(info),
        reranked=reranked_rows(info),
        metric_columns=metric_columns,
        accuracy_columns=accuracy_columns,
        sources=sources,
    )
    out.write_text(page, encoding="utf-8")
    records = []
    for r in info.rows:
        record: dict[str, Any] = {
            "trial": r.number,
            "state": r.state,
            "feasible": r.feasible,
            "pareto": r.number in info.pareto,
            "fail_reason": r.fail_reason,
            "proposed_by": r.proposed_by or "sampler",
        }
        record.update({f"param.{k}": v for k, v in r.params.items()})
        record.update({f"{k} [{r.sources.get(k, 'model')}]": v for k, v in r.metrics.items()})
        for k, (low, high) in r.details.get("intervals", {}).items():
            record[f"{k} 80% low [model]"], record[f"{k} 80% high [model]"] = low, high
        records.append(record)
    pd.DataFrame.from_records(records).to_csv(out.with_name("trials.csv"), index=False)
    return out
