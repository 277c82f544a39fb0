"""APoZ channel pruning on ONNX (seed 002; Hu et al. 2016).

APoZ of an output channel = the fraction of zeros after its activation, over the calibration set. The
prunable convolutions (see channels.py) are split into layer groups of neighbouring convolutions, each
with one threshold; a channel whose APoZ is at least its group's threshold is removed, coupled channels
together, keeping at least `multiple` channels and rounding the remaining count up to a multiple of
`multiple` (4 as in the seed, or the DPU's channel parallelism). The result is a valid, smaller ONNX
model with the same inputs and outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from explorer.compress.channels import build_channel_graph, keep_positions
from explorer.data.loaders import Dataset
from explorer.errors import ExplorerError
from explorer.graph.loader import infer_shapes_light
from explorer.graph.util import attr_int, initializers, static_shapes, topological_order
from explorer.runtime import stream_model


@dataclass(frozen=True)
class ClusterStats:
    """One prunable unit: coupled convolution output spaces, their APoZ per channel and their group."""

    root: int
    sources: tuple[str, ...]
    size: int
    apoz: np.ndarray  # per channel: min over the coupled activations
    group: str


@dataclass(frozen=True)
class ApozReport:
    clusters: tuple[ClusterStats, ...]
    blocked: tuple[tuple[str, str], ...]  # (convolution, why it is not prunable)
    groups: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the disk cache's entry)."""
        clusters = [
            {"root": c.root, "sources": list(c.sources), "size": c.size, "apoz": c.apoz.tolist(), "group": c.group}
            for c in self.clusters
        ]
        return {"clusters": clusters, "blocked": [list(b) for b in self.blocked], "groups": list(self.groups)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApozReport:
        return cls(
            tuple(
                ClusterStats(c["root"], tuple(c["sources"]), c["size"], np.array(c["apoz"]), c["group"]) for c in data["clusters"]
            ),
            tuple((b[0], b[1]) for b in data["blocked"]),
            tuple(data["groups"]),
        )

    def group_summary(self) -> list[dict[str, object]]:
        out = []
        for group in self.groups:
            members = [c for c in self.clusters if c.group == group]
            values = np.concatenate([c.apoz for c in members]) if members else np.zeros(0)
            out.append(
                {
                    "group": group,
                    "convolutions": sum(len(c.sources) for c in members),
                    "channels": int(values.size),
                    "apoz_mean": float(values.mean()) if values.size else 0.0,
                    "apoz_max": float(values.max()) if values.size else 0.0,
                    "apoz_quantiles": {q: float(np.quantile(values, q)) for q in (0.5, 0.9)} if values.size else {},
                }
            )
        return out


def measure_apoz(model: onnx.ModelProto, data: Dataset, groups: int = 4, batch: int = 64) -> ApozReport:
    """APoZ of every prunable cluster, measured once on `data`; clusters split into `groups` layer groups."""
    cg = build_channel_graph(model)
    clusters = cg.clusters()
    units = []
    for root, members in sorted(clusters.items(), key=lambda kv: min(cg.spaces[s].source_index for s in kv[1])):
        ok, _ = cg.cluster_prunable(root)
        if ok and all(cg.spaces[s].source for s in members):
            units.append((root, members))
    tensors = sorted({cg.spaces[s].activation for _, members in units for s in members})
    zeros: dict[str, np.ndarray | None] = {t: None for t in tensors}
    total = 0
    if tensors:
        for count, outs in stream_model(model, data.inputs, extra_outputs=tensors, batch=batch):
            for t in tensors:
                z = (outs[t] == 0).sum(axis=(0, 2, 3)) if outs[t].ndim == 4 else (outs[t] == 0).sum(axis=0)
                zeros[t] = z if zeros[t] is None else zeros[t] + z
            total += count
    n_groups = max(1, min(groups, len(units))) if units else 1
    names = tuple(f"g{i}" for i in range(n_groups))
    stats = []
    for k, (root, members) in enumerate(units):
        per_space = []
        for s in members:
            act = cg.spaces[s].activation
            per_space.append(np.asarray(zeros[act], dtype=np.float64) / (total * _spatial_size(model, act)))
        apoz = np.min(np.stack(per_space), axis=0)
        group = names[min(n_groups - 1, k * n_groups // max(1, len(units)))]
        stats.append(ClusterStats(root, tuple(cg.spaces[s].source for s in members), cg.spaces[members[0]].size, apoz, group))
    blocked = tuple((s.source, s.reason) for s in cg.spaces.values() if s.source and not s.prunable)
    return ApozReport(tuple(stats), blocked, names)


def _spatial_size(model: onnx.ModelProto, tensor: str) -> int:
    shape = static_shapes(model).get(tensor, ())
    return int(np.prod(shape[2:])) if len(shape) > 2 else 1


def parse_thresholds(spec: str | Mapping[str, float], groups: tuple[str, ...]) -> dict[str, float]:
    """`g0=0.9,g1=0.85` (or a mapping; `all=T` sets every group) -> {group: threshold}."""
    items = spec.items() if isinstance(spec, Mapping) else (p.split("=", 1) for p in spec.split(",") if p.strip())
    out: dict[str, float] = {}
    for item in items:
        if len(item) != 2:
            raise ExplorerError(f"--prune {spec!r}: expected GROUP=THRESHOLD,... with groups {', '.join(groups)} or all")
        name, value = str(item[0]).strip(), item[1]
        try:
            threshold = float(value)
        except ValueError as exc:
            raise ExplorerError(f"--prune: threshold {value!r} for {name} is not a number") from exc
        if not 0.0 <= threshold <= 1.0:
            raise ExplorerError(f"--prune: threshold for {name} must be in [0, 1], got {threshold}")
        if name == "all":
            out.update({g: threshold for g in groups})
        elif name in groups:
            out[name] = threshold
        else:
            raise ExplorerError(f"--prune: unknown layer group {name!r}; groups are {', '.join(groups)} (or all)")
    return out


def choose_channels(
    report: ApozReport,
    thresholds: Mapping[str, float],
    multiple: int,
    abstain_ocp: int = 0,
    ranks: Mapping[tuple[str, ...], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Kept channel indices per source convolution (by node name; only convolutions that lose channels).

    A cluster loses the channels whose APoZ is at least its group's threshold, rounded to keep a multiple of
    `multiple`; which channels go is `ranks` (per cluster, by its sources: channel indices most needed first;
    selection.py) or else the APoZ order (the most often zero go first).

    Keyed by name so that one decision applies to any normalisation of the same model (batch 1 for the
    latency estimate, a larger batch for evaluation). `abstain_ocp`: the output-channel parallelism of the
    DPU; a cluster whose pruning would leave its compute passes ceil(channels / OCP) unchanged stays whole
    (seed 002: "abstain from the pruning" where it buys parameters but no time)."""
    kept: dict[str, np.ndarray] = {}
    for c in report.clusters:
        t = thresholds.get(c.group)
        if t is None:
            continue
        order = ranks.get(c.sources) if ranks is not None else None  # most needed first
        if order is None:
            order = np.argsort(c.apoz, kind="stable")  # most active first
        candidates = int((c.apoz >= t).sum())
        keep = c.size - candidates
        keep = min(c.size, max(multiple, math.ceil(keep / multiple) * multiple)) if multiple > 1 else max(1, keep)
        if abstain_ocp and math.ceil(keep / abstain_ocp) == math.ceil(c.size / abstain_ocp):
            continue
        if keep < c.size:
            for source in c.sources:
                kept[source] = np.sort(order[:keep])
    return kept


def apply_pruning(model: onnx.ModelProto, kept_by_source: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A new model with the pruned channels removed from every weight that touches them."""
    cg = build_channel_graph(model)
    kept = {sid: kept_by_source[space.source] for sid, space in cg.spaces.items() if space.source in kept_by_source}
    consts = initializers(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    replace: dict[str, np.ndarray] = {}
    nodes = [out.graph.node[i] for i in topological_order(list(out.graph.node))]

    def positions(tensor: str) -> list[int] | None:
        lst = cg.lists.get(tensor)
        if lst is None:
            return None
        pos = keep_positions(lst, kept)
        return None if len(pos) == len(lst) else pos

    def sliced(name: str, axis: int, idx: list[int] | np.ndarray) -> None:
        base = replace.get(name, consts[name])
        replace[name] = np.take(base, np.asarray(idx, dtype=np.int64), axis=axis)

    for node in nodes:
        acts = [t for t in node.input if t and t not in consts]
        op = node.op_type
        in_pos = positions(acts[0]) if acts else None
        if op == "Conv" and len(node.input) > 1 and node.input[1] in consts:
            w = consts[node.input[1]]
            group = attr_int(node, "group", 1)
            if group == 1:
                sid = cg.lists[node.output[0]][0][0]
                if sid in kept:
                    sliced(node.input[1], 0, kept[sid])
                    if len(node.input) > 2 and node.input[2] in consts:
                        sliced(node.input[2], 0, kept[sid])
                if in_pos is not None:
                    sliced(node.input[1], 1, in_pos)
            elif in_pos is not None and group == w.shape[0]:
                sliced(node.input[1], 0, in_pos)
                if len(node.input) > 2 and node.input[2] in consts:
                    sliced(node.input[2], 0, in_pos)
                for attr in node.attribute:
                    if attr.name == "group":
                        attr.i = len(in_pos)
        elif in_pos is not None and op == "ConvTranspose":
            sliced(node.input[1], 0, in_pos)
        elif in_pos is not None and op in ("Gemm", "MatMul"):
            trans_b = attr_int(node, "transB", 0) if op == "Gemm" else 0
            sliced(node.input[1], 1 if trans_b else 0, in_pos)
        elif in_pos is not None:
            # per-channel constants of channel-preserving operators (BatchNorm, PRelu, Add/Mul by a (C,1,1) tensor)
            for name in node.input:
                if name in consts and consts[name].ndim >= 1:
                    arr = consts[name]
                    axis = arr.ndim - 3 if arr.ndim >= 3 else 0
                    if arr.shape[axis] == len(cg.lists[acts[0]]) and arr.size > 1:
                        sliced(name, axis, in_pos)
    for init in out.graph.initializer:
        if init.name in replace:
            init.CopyFrom(numpy_helper.from_array(replace[init.name].astype(consts[init.name].dtype), init.name))
    pruned = infer_shapes_light(out)
    onnx.checker.check_model(pruned)
    return pruned
