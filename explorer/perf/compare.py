"""Two design points side by side, layer by layer: estimated DPU time, achieved GOPS, and for a pruned
layer whether pruning shortened it (seed 002, Figures 12 and 13).

A convolution's DPU compute time is proportional to ceil(output channels / OCP), and the engines move a pixel's
channels in bank rows of ICP (perf/dpu.py): pruning a layer from 32 to 28 output channels on a DPU with OCP =
ICP = 16 leaves it at two passes and two rows a pixel, so its time does not change, only its parameters. The
layers are matched by name (pruning keeps the names of what it keeps). All times are estimates (source: model).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from html import escape
from typing import Any

from explorer.graph.layers import ModelGraph
from explorer.perf.estimate import PerfEstimate

CHANNEL_KINDS = ("conv", "deconv", "fc", "dwconv")
# A pruned layer counts as shorter when its time falls by at least this share. Smaller changes are below what
# the model resolves: its median error on the published rows it was fitted to is about 2 % (docs/latency_model.md).
RESOLUTION = 0.01


@dataclass(frozen=True)
class LayerPair:
    name: str
    kind: str
    device_a: str
    device_b: str
    time_a_ms: float
    time_b_ms: float
    gops_a: float
    gops_b: float
    channels_a: int
    channels_b: int
    passes_a: int  # ceil(output channels / OCP): the compute passes of a convolution (0 for other kinds)
    passes_b: int
    verdict: str  # for a layer whose channels differ: "shorter", "not shorter" (and why), or ""

    @property
    def difference_ms(self) -> float:
        return self.time_b_ms - self.time_a_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "difference_ms": self.difference_ms}


def _passes(kind: str, channels: int, ocp: int, icp: int) -> int:
    if kind not in CHANNEL_KINDS or channels <= 0:
        return 0
    return math.ceil(channels / (icp if kind == "dwconv" else ocp))


def compare_layers(
    graph_a: ModelGraph,
    est_a: PerfEstimate,
    par_a: tuple[int, int],
    graph_b: ModelGraph,
    est_b: PerfEstimate,
    par_b: tuple[int, int],
) -> list[LayerPair]:
    """Every layer of A (with its namesake in B), then B's layers that A lacks; `par_*`: (OCP, ICP) of each DPU."""
    times_a = {graph_a.layers[t.layer].name: t for t in est_a.layers}
    times_b = {graph_b.layers[t.layer].name: t for t in est_b.layers}
    layers_b = {layer.name: layer for layer in graph_b.layers}
    names = [layer.name for layer in graph_a.layers] + [n for n in layers_b if n not in times_a]
    layers_a = {layer.name: layer for layer in graph_a.layers}
    pairs = []
    for name in names:
        la, lb = layers_a.get(name), layers_b.get(name)
        ta, tb = times_a.get(name), times_b.get(name)
        kind = (la or lb).kind  # type: ignore[union-attr]
        ca, cb = (la.out_channels if la else 0), (lb.out_channels if lb else 0)
        pa, pb = _passes(kind, ca, *par_a), _passes(kind, cb, *par_b)
        verdict = ""
        if la and lb and ca != cb and kind in CHANNEL_KINDS:  # a pruned layer (its activation follows it)
            shorter = tb is not None and ta is not None and tb.time_ms <= ta.time_ms * (1 - RESOLUTION)
            if shorter:
                verdict = "shorter"
            elif pa == pb and pa:
                verdict = f"not shorter: {pa} channel passes either way"
            else:
                verdict = f"not shorter ({tb.bound if tb else 'absent'}-bound)"
        pairs.append(
            LayerPair(
                name,
                kind,
                ta.device if ta else "-",
                tb.device if tb else "-",
                ta.time_ms if ta else 0.0,
                tb.time_ms if tb else 0.0,
                ta.gops if ta else 0.0,
                tb.gops if tb else 0.0,
                ca,
                cb,
                pa,
                pb,
                verdict,
            )
        )
    return pairs


COLUMNS = (
    "name",
    "kind",
    "time_a_ms",
    "time_b_ms",
    "gops_a",
    "gops_b",
    "channels_a",
    "channels_b",
    "passes_a",
    "passes_b",
    "verdict",
)


def to_columns(pairs: list[LayerPair]) -> dict[str, list[Any]]:
    """The comparison as columns (what a trial records: compact, JSON-ready), times rounded to 0.1 ns."""
    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for p in pairs:
        for c in COLUMNS:
            value = getattr(p, c)
            columns[c].append(round(value, 7) if isinstance(value, float) else value)
    return columns


def largest_differences(columns: dict[str, list[Any]], count: int) -> list[dict[str, Any]]:
    """The `count` layers of a recorded comparison whose time differs most, as rows (largest first)."""
    n = len(columns.get("name", []))
    rows = [{c: columns[c][i] for c in COLUMNS if c in columns} for i in range(n)]
    for row in rows:
        row["difference_ms"] = float(row.get("time_b_ms", 0.0)) - float(row.get("time_a_ms", 0.0))
    rows.sort(key=lambda r: -abs(r["difference_ms"]))
    return [r for r in rows[:count] if r["difference_ms"] or r.get("verdict")]


def figure_html(pairs: list[LayerPair], label_a: str, label_b: str, title: str) -> str:
    """A self-contained page (Plotly inlined, offline): per-layer DPU time and GOPS of A and B."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [escape(p.name) for p in pairs]  # plotly reads a few HTML tags in labels: names are shown as text
    label_a, label_b, title = escape(label_a), escape(label_b), escape(title)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        subplot_titles=("time per layer (ms, estimate; the CPU's for CPU layers)", "Achieved GOPS"),
    )
    for label, times, gops, color in (
        (label_a, [p.time_a_ms for p in pairs], [p.gops_a for p in pairs], "#1f77b4"),
        (label_b, [p.time_b_ms for p in pairs], [p.gops_b for p in pairs], "#ff7f0e"),
    ):
        fig.add_trace(go.Bar(x=names, y=times, name=label, marker_color=color, legendgroup=label), row=1, col=1)
        fig.add_trace(go.Bar(x=names, y=gops, name=label, marker_color=color, legendgroup=label, showlegend=False), row=2, col=1)
    fig.update_layout(title=title, barmode="group", height=800)
    html: str = fig.to_html(include_plotlyjs=True, full_html=True)
    return html
