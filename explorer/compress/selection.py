"""Which channels a pruned cluster keeps: the ones its consumers' least-squares refit can least do without.

APoZ (prune.py) says how many channels each cluster loses: those whose activations are zero at least a
threshold's share of the time. Which of them go is a second question. Ordering by APoZ alone removes the
most often silent channels, even when what they carry when active is what the next layer needs most; and
after pruning, reconstruct.py refits each consumer by least squares on the channels left, so the channels
that matter least are the ones whose contribution the others can best re-express. That is the selection
step of He et al. 2017 ("Channel Pruning for Accelerating Very Deep Neural Networks") and of ThiNet (Luo et
al. 2017), done here as greedy backward elimination on the consumers' Gram matrices:

    for a consumer y = W x + b of the unpruned model, with G = E[x x^T] (patches and a bias column) on the
    calibration data, the refit on the kept inputs K leaves the residual
        r(K) = tr(W G W^T) - tr(W G[:, K] G[K, K]^-1 G[K, :] W^T),
    and removing the inputs J of one channel from K adds  tr(B_J^T (H_JJ)^-1 B_J)  with H = G[K, K]^-1 and
    B = H G[K, :] W^T (the refitted weights): one block of H per channel, updated by a rank-|J| downdate.

A channel's cost is summed over every consumer that reads it (a residual stream feeds several), each relative
to that consumer's output energy tr(W G W^T), and the cheapest channel goes first, until one is left. The
result is a rank per cluster (most needed first); `choose_channels` keeps the first `keep` of it. numpy only,
one pass of the model over the calibration data, cached per model and data by the compression context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from explorer.compress.channels import build_channel_graph
from explorer.compress.prune import ApozReport
from explorer.compress.reconstruct import CHUNK, POSITIONS, Consumer, linear_layers, patches
from explorer.data.loaders import Dataset
from explorer.graph.util import initializers
from explorer.runtime import stream_model

JITTER = 1e-6  # added to the Gram matrix's diagonal, relative to its mean (a channel that is always zero)


def output_size(c: Consumer, height: int, width: int) -> tuple[int, int]:
    """The spatial size of consumer `c`'s output for an input of height x width."""
    size = []
    for extent, k, stride, dilation, pad in zip(
        (height, width), c.kernel, c.strides, c.dilations, (c.pads[0] + c.pads[2], c.pads[1] + c.pads[3]), strict=True
    ):
        size.append((extent + pad - (k - 1) * dilation - 1) // stride + 1)
    return size[0], size[1]


def gram_matrices(
    model: onnx.ModelProto, consumers: list[Consumer], data: Dataset, positions: int = POSITIONS, seed: int = 0
) -> dict[str, np.ndarray]:
    """Per consumer (by output name): the Gram matrix of its input patches, with a bias column of ones, at
    `positions` output positions drawn per sample (seeded), over the calibration data."""
    rng = np.random.default_rng(seed)
    grams: dict[str, np.ndarray] = {}
    rows: dict[str, list[np.ndarray]] = {c.node: [] for c in consumers}

    def add(c: Consumer) -> None:  # one product per CHUNK samples, not one per sample
        design = np.vstack(rows[c.node]).astype(np.float64)
        design = np.hstack([design, np.ones((len(design), 1))])
        grams[c.node] = design.T @ design + grams.get(c.node, 0.0)
        rows[c.node].clear()

    for count, outs in stream_model(model, data.inputs, extra_outputs=sorted({c.input for c in consumers})):
        for c in consumers:
            x = outs[c.input]
            for k in range(count):
                if c.op == "Conv":
                    oh, ow = output_size(c, x.shape[2], x.shape[3])
                    flat = rng.choice(oh * ow, size=min(positions, oh * ow), replace=False)
                    rows[c.node].append(patches(x[k], c, flat // ow, flat % ow))
                else:
                    rows[c.node].append(x[k].reshape(1, -1))
            if len(rows[c.node]) >= CHUNK:
                add(c)
    for c in consumers:
        if rows[c.node]:
            add(c)
    return grams


@dataclass
class _Fit:
    """One consumer's refit while channels are removed: the alive columns, H = G[K, K]^-1 and B = H G[K, :] W^T."""

    columns: dict[int, np.ndarray]  # per channel of the cluster: its columns in the consumer's design matrix
    where: np.ndarray  # per design-matrix column: its position among the alive ones (-1: removed)
    h: np.ndarray
    b: np.ndarray
    energy: float

    def costs(self, channels: list[int]) -> np.ndarray:
        """What removing each of `channels` alone adds to this consumer's residual, relative to its energy."""
        out = np.zeros(len(channels))
        if len({len(self.columns[j]) for j in channels}) == 1:  # the usual case: every channel has kh*kw columns
            pos = self.where[np.stack([self.columns[j] for j in channels])]  # (n, L)
            coef = self.b[pos]  # (n, L, out)
            if pos.shape[1] == 1:
                out[:] = np.einsum("no,no->n", coef[:, 0], coef[:, 0]) / self.h[pos[:, 0], pos[:, 0]]
            else:
                blocks = self.h[pos[:, :, None], pos[:, None, :]]  # (n, L, L)
                out[:] = np.einsum("nlo,nlo->n", coef, np.linalg.solve(blocks, coef))
        else:
            for i, j in enumerate(channels):
                p = self.where[self.columns[j]]
                out[i] = float(np.sum(self.b[p] * np.linalg.solve(self.h[np.ix_(p, p)], self.b[p])))
        return out / self.energy

    def remove(self, channel: int) -> None:
        p = self.where[self.columns[channel]]
        rest = np.ones(len(self.h), dtype=bool)
        rest[p] = False
        cross = self.h[np.ix_(rest, p)] @ np.linalg.inv(self.h[np.ix_(p, p)])
        self.b = self.b[rest] - cross @ self.b[p]
        self.h = self.h[np.ix_(rest, rest)] - cross @ self.h[np.ix_(p, rest)]
        alive = self.where >= 0
        alive[self.columns[channel]] = False
        self.where = np.where(alive, np.cumsum(alive) - 1, -1)


def reconstruction_ranks(model: onnx.ModelProto, data: Dataset, report: ApozReport) -> dict[tuple[str, ...], np.ndarray]:
    """Per prunable cluster (by its source convolutions): its channel indices, most needed first (see above).
    A cluster that no convolution or Gemm reads keeps the APoZ order (most active first)."""
    graph = build_channel_graph(model)
    layers = linear_layers(model)
    weights = initializers(model)
    members_of = {c.sources: {s for s, space in graph.spaces.items() if space.source in c.sources} for c in report.clusters}
    wanted = set().union(*members_of.values()) if members_of else set()
    readers = [c for c in layers if any(space in wanted for space, _ in graph.lists.get(c.input, []))]
    grams = gram_matrices(model, readers, data) if readers else {}
    ranks: dict[tuple[str, ...], np.ndarray] = {}
    for cluster in report.clusters:
        members = members_of[cluster.sources]
        fits = [fit for c in readers if (fit := _fit(c, grams[c.node], weights, graph.lists[c.input], members))]
        if not fits or not all(len(f.columns) == cluster.size for f in fits):
            ranks[cluster.sources] = np.argsort(cluster.apoz, kind="stable")
            continue
        removed: list[int] = []
        alive = list(range(cluster.size))
        while len(alive) > 1:
            costs = sum(f.costs(alive) for f in fits)
            cheapest = alive[int(np.argmin(costs))]
            for f in fits:
                f.remove(cheapest)
            alive.remove(cheapest)
            removed.append(cheapest)
        ranks[cluster.sources] = np.array([*alive, *reversed(removed)])
    return ranks


def _fit(
    c: Consumer, gram: np.ndarray, weights: Mapping[str, np.ndarray], inputs: list[tuple[int, int]], members: set[int]
) -> _Fit | None:
    """Consumer `c`'s refit state on every input, with the columns of the cluster's channels (None if it reads none)."""
    taps = c.kernel[0] * c.kernel[1]
    columns: dict[int, list[int]] = {}
    for position, (space, channel) in enumerate(inputs):
        if space in members:
            columns.setdefault(channel, []).extend(range(position * taps, (position + 1) * taps))
    if not columns:
        return None
    w = weights[c.weight]
    w = (w.reshape(w.shape[0], -1) if c.op == "Conv" else (w if c.trans_b else w.T)).astype(np.float64)
    bias = weights[c.bias].astype(np.float64) if c.bias else np.zeros(w.shape[0])
    wb = np.hstack([w, bias[:, None]])  # (out, K + 1)
    if wb.shape[1] != len(gram):
        return None  # (an input whose channel list does not match the weight: leave the cluster to APoZ)
    h = np.linalg.inv(gram + JITTER * float(np.mean(np.diag(gram))) * np.eye(len(gram)))
    energy = float(np.trace(wb @ gram @ wb.T)) or 1.0
    cols = {j: np.array(v) for j, v in columns.items()}
    return _Fit(cols, np.arange(len(gram)), h, h @ (gram @ wb.T), energy)
