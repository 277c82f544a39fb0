"""A procedural 2-D human-pose dataset: stick figures with the 16 MPII joints, rendered with numpy.

Every sample comes from a seed: random body proportions, joint angles within human-like limits, scale,
position and mirror; limbs drawn as thick strokes with their own shades; a cluttered background
(low-frequency noise, distractor strokes and boxes) and pixel noise. Keypoints are returned in the
normalised coordinates of DSNT, x and y in [-1, 1] ((2 * pixel + 1) / size - 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

JOINTS = (
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
)
# (child, parent, length as a fraction of body height, base angle from the parent's bone, angle spread), radians.
# Angles are measured from the parent bone's direction; the root bone (pelvis -> thorax) points up.
_BONES = (
    (7, 6, 0.30, 0.0, 0.35),  # spine
    (8, 7, 0.07, 0.0, 0.25),  # neck
    (9, 8, 0.12, 0.0, 0.35),  # head
    (12, 7, 0.11, -np.pi / 2, 0.15),  # right shoulder (image left when facing the viewer)
    (11, 12, 0.17, -np.pi / 2, 1.6),  # right upper arm
    (10, 11, 0.15, 0.0, 1.4),  # right forearm
    (13, 7, 0.11, np.pi / 2, 0.15),
    (14, 13, 0.17, np.pi / 2, 1.6),
    (15, 14, 0.15, 0.0, 1.4),
    (2, 6, 0.08, -np.pi / 2, 0.15),  # right hip, sideways from the pelvis
    (1, 2, 0.24, -np.pi / 2, 0.7),  # right thigh: a quarter turn from the leftward hip bone = down
    (0, 1, 0.23, 0.0, 0.8),  # right shin
    (3, 6, 0.08, np.pi / 2, 0.15),
    (4, 3, 0.24, np.pi / 2, 0.7),
    (5, 4, 0.23, 0.0, 0.8),
)
LIMBS = tuple((child, parent) for child, parent, *_ in _BONES)
MIRROR = (5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10)  # joint index after a left-right flip


@dataclass(frozen=True)
class PoseSample:
    image: np.ndarray  # (3, size, size) float32 in [0, 1]
    keypoints: np.ndarray  # (16, 2) float32, normalised to [-1, 1]


def _skeleton(rng: np.random.Generator) -> np.ndarray:
    """Joint positions of one random pose in body-height units (y grows downwards)."""
    pos = np.zeros((16, 2))
    direction = np.zeros(16)
    direction[6] = -np.pi / 2 + rng.normal(0.0, 0.2)  # the pelvis' "bone" points up, with a lean
    proportions = rng.uniform(0.85, 1.15, size=len(_BONES))
    for (child, parent, length, base, spread), scale in zip(_BONES, proportions, strict=True):
        angle = direction[parent] + base + rng.uniform(-spread, spread)
        direction[child] = angle
        pos[child] = pos[parent] + length * scale * np.array([np.cos(angle), np.sin(angle)])
    return pos


def _segment_distance(xx: np.ndarray, yy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    denom = float(ab @ ab) or 1e-9
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / denom, 0.0, 1.0)
    distance: np.ndarray = np.hypot(xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1]))
    return distance


def _paint_segment(
    image: np.ndarray, xx: np.ndarray, yy: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, colour: np.ndarray
) -> None:
    """Colour the pixels nearer than `radius` to the segment a-b. Only the segment's bounding box, widened by
    the radius, is looked at: no pixel outside it is that near, so the image is the same as over the whole grid."""
    size = image.shape[-1]
    x0, x1 = max(0, math.floor(min(a[0], b[0]) - radius - 1)), min(size, math.ceil(max(a[0], b[0]) + radius + 1))
    y0, y1 = max(0, math.floor(min(a[1], b[1]) - radius - 1)), min(size, math.ceil(max(a[1], b[1]) + radius + 1))
    if x0 >= x1 or y0 >= y1:
        return
    window = image[:, y0:y1, x0:x1]  # a view: painting it paints the image
    window[:, _segment_distance(xx[y0:y1, x0:x1], yy[y0:y1, x0:x1], a, b) < radius] = colour


def _background(rng: np.random.Generator, size: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    coarse = rng.uniform(0.0, 1.0, size=(3, 5, 5))
    idx = np.linspace(0, 4, size)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, 4)
    w = idx - lo
    rows = coarse[:, lo, :] * (1 - w)[None, :, None] + coarse[:, hi, :] * w[None, :, None]
    image = rows[:, :, lo] * (1 - w)[None, None, :] + rows[:, :, hi] * w[None, None, :]
    image = 0.25 + 0.5 * image
    for _ in range(rng.integers(0, 4)):  # distractor strokes
        a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        radius = rng.uniform(0.5, 2.0)
        _paint_segment(image, xx, yy, a, b, radius, rng.uniform(0, 1, size=(3, 1)))
    for _ in range(rng.integers(0, 3)):  # distractor boxes
        x0, y0 = rng.integers(0, size, 2)
        w_, h_ = rng.integers(3, max(4, size // 4), 2)
        image[:, y0 : y0 + h_, x0 : x0 + w_] = rng.uniform(0, 1, size=(3, 1, 1))
    result: np.ndarray = image
    return result


def render(rng: np.random.Generator, size: int = 96) -> PoseSample:
    """One random sample."""
    pose = _skeleton(rng)
    if rng.random() < 0.5:  # mirror: swap left and right so that labels stay anatomical
        pose = pose * np.array([-1.0, 1.0])
        pose = pose[list(MIRROR)]
    height = rng.uniform(0.45, 0.85) * size
    pts = pose * height
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = 0.06 * size
    offset = np.array(
        [
            rng.uniform(margin - lo[0], max(margin - lo[0], size - margin - hi[0])),
            rng.uniform(margin - lo[1], max(margin - lo[1], size - margin - hi[1])),
        ]
    )
    pts = pts + offset
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    image = _background(rng, size, xx, yy)
    thickness = max(1.0, 0.035 * height)
    body = rng.uniform(0.0, 1.0, size=3)
    for child, parent in LIMBS:
        shade = np.clip(body + rng.normal(0.0, 0.08, size=3), 0, 1)
        _paint_segment(image, xx, yy, pts[parent], pts[child], thickness, shade[:, None])
    head = np.hypot(xx - pts[9, 0], yy - pts[9, 1]) < 0.07 * height
    image[:, head] = np.clip(body + 0.1, 0, 1)[:, None]
    image = np.clip(image + rng.normal(0.0, 0.04, size=image.shape), 0.0, 1.0)
    keypoints = (2.0 * pts) / size - 1.0  # pts are continuous pixel coordinates (pixel centres at +0.5)
    return PoseSample(image.astype(np.float32), keypoints.astype(np.float32))


def make_pose_dataset(count: int, seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """`count` samples from `seed`: images (N, 3, size, size) float32 and keypoints (N, 16, 2) float32."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, 3, size, size), dtype=np.float32)
    keypoints = np.empty((count, 16, 2), dtype=np.float32)
    for i in range(count):
        sample = render(rng, size)
        images[i], keypoints[i] = sample.image, sample.keypoints
    return images, keypoints


# Seeds of the bundled example's splits, so that training, calibration and evaluation never overlap.
TRAIN_SEED, CALIBRATION_SEED, EVALUATION_SEED = 1, 2, 3
