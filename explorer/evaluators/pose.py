"""Pose metrics on normalised keypoints (x, y in [-1, 1], DSNT convention).

- euclidean_error: mean Euclidean distance between predicted and true joints (the seeds' "Euclidean loss").
- jsd: mean Jensen-Shannon divergence (nats) between predicted heatmaps and Gaussian target heatmaps.
- pck: PCK@0.2, the fraction of joints within 0.2 x torso size (right shoulder to left hip).
"""

from __future__ import annotations

import hashlib

import numpy as np

R_SHOULDER, L_HIP = 12, 3


def gaussian_heatmaps(keypoints: np.ndarray, size: int, sigma_cells: float = 1.0) -> np.ndarray:
    """Normalised Gaussian heatmaps (N, J, size, size) centred on normalised keypoints (N, J, 2)."""
    centres = (2 * np.arange(size, dtype=np.float32) + 1) / size - 1
    sigma = sigma_cells * 2.0 / size
    gx = np.exp(-((centres[None, None, :] - keypoints[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((centres[None, None, :] - keypoints[..., 1:2]) ** 2) / (2 * sigma**2))
    maps = gy[..., :, None] * gx[..., None, :]
    total = maps.sum(axis=(-2, -1), keepdims=True)
    result: np.ndarray = (maps / np.maximum(total, 1e-12)).astype(np.float32)
    return result


def js_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """JS divergence over the last two axes (natural log): KL(p||m)/2 + KL(q||m)/2 with m = (p + q)/2, as
    (sum p log p + sum q log q - sum (p + q) log m) / 2, three logarithms per cell."""
    p = p / np.maximum(p.sum(axis=(-2, -1), keepdims=True), eps)
    q = q / np.maximum(q.sum(axis=(-2, -1), keepdims=True), eps)
    s = p + q
    cells = p * np.log(p + eps) + q * np.log(q + eps) - s * np.log(0.5 * s + eps)
    return 0.5 * cells.sum(axis=(-2, -1))  # type: ignore[no-any-return]


def pose_metrics(coords: np.ndarray, keypoints: np.ndarray, heatmaps: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of predicted coordinates (N, J, 2) against true keypoints, and heatmaps if given."""
    coords = np.asarray(coords, dtype=np.float64).reshape(keypoints.shape)
    dist = np.linalg.norm(coords - keypoints, axis=-1)
    torso = np.linalg.norm(keypoints[:, R_SHOULDER] - keypoints[:, L_HIP], axis=-1, keepdims=True)
    out = {"euclidean_error": float(dist.mean()), "pck": float((dist < 0.2 * np.maximum(torso, 1e-6)).mean())}
    if heatmaps is not None:
        target = _targets(keypoints, heatmaps.shape[-1])
        out["jsd"] = float(js_divergence(np.asarray(heatmaps, dtype=np.float64), target).mean())
    return out


_TARGETS: dict[tuple[bytes, int], np.ndarray] = {}  # a study evaluates many models on the same keypoints


def _targets(keypoints: np.ndarray, size: int) -> np.ndarray:
    """The Gaussian target heatmaps of `keypoints` (float64), made once per keypoint set and size."""
    key = (hashlib.sha256(np.ascontiguousarray(keypoints).tobytes()).digest() + str(keypoints.shape).encode(), size)
    if key not in _TARGETS:
        if len(_TARGETS) >= 4:
            _TARGETS.clear()
        _TARGETS[key] = gaussian_heatmaps(keypoints, size).astype(np.float64)
    return _TARGETS[key]
