"""Evaluation and calibration data: `.npz` files, folders, or the procedural pose generator.

A data spec is one of:
  path/to/file.npz              arrays: the model input(s) by name (or `input`, `images`, `x` for a
                                single-input model); every other array is a label (e.g. `keypoints`, `labels`)
  path/to/folder/               every `*.npz` shard in it, concatenated; or `*.png` images (8-bit gray/RGB,
                                scaled to [0, 1], NCHW) with a `labels.json` {file name: label}
  pose-synth:COUNT:SEED[:SIZE]  COUNT samples of the procedural pose generator from SEED (default size 96)
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.data.pose_synth import make_pose_dataset
from explorer.errors import ExplorerError

_INPUT_ALIASES = ("input", "images", "image", "x", "data")


@dataclass(frozen=True)
class Dataset:
    inputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    source: str
    digest: str = field(default="")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def head(self, count: int) -> Dataset:
        """The first `count` samples (a deterministic subset)."""
        if count >= len(self):
            return self
        inputs = {k: v[:count] for k, v in self.inputs.items()}
        labels = {k: v[:count] for k, v in self.labels.items()}
        return Dataset(inputs, labels, f"{self.source}[:{count}]", _digest(inputs, labels))


def _digest(inputs: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for group in (inputs, labels):
        for name in sorted(group):
            array = np.ascontiguousarray(group[name])
            h.update(name.encode())
            h.update(str(array.dtype).encode() + str(array.shape).encode())
            h.update(array.tobytes())
    return h.hexdigest()[:20]


def _split(arrays: dict[str, np.ndarray], input_names: Sequence[str], source: str) -> Dataset:
    inputs: dict[str, np.ndarray] = {}
    for name in input_names:
        if name in arrays:
            inputs[name] = arrays[name]
    if not inputs and len(input_names) == 1:
        for alias in _INPUT_ALIASES:
            if alias in arrays:
                inputs[input_names[0]] = arrays[alias]
                break
    missing = [n for n in input_names if n not in inputs]
    if missing:
        raise ExplorerError(
            f"{source}: no array for model input(s) {', '.join(missing)}; arrays present: "
            f"{', '.join(arrays) or 'none'} (name them after the inputs, or `input` for one input)"
        )
    used = {id(v) for v in inputs.values()}
    labels = {k: v for k, v in arrays.items() if id(v) not in used}
    counts = {len(v) for v in [*inputs.values(), *labels.values()]}
    if len(counts) != 1:
        raise ExplorerError(f"{source}: arrays have different sample counts {sorted(counts)}")
    inputs = {k: v.astype(np.float32) if v.dtype != np.float32 else v for k, v in inputs.items()}
    return Dataset(inputs, labels, source, _digest(inputs, labels))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zlib.error) as exc:
        raise ExplorerError(f"{path}: not a readable .npz file ({exc})") from exc


def read_png(path: Path) -> np.ndarray:
    """An 8-bit PNG (gray, RGB, RGBA or palette; read with Pillow) as (channels, H, W) float32 in [0, 1]:
    one channel for gray, three otherwise (alpha is dropped)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ExplorerError(f"{path}: not a PNG file ({image.format})")
            if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                raise ExplorerError(f"{path}: only 8-bit gray, RGB, RGBA or palette PNG is supported, not mode {image.mode}")
            pixels = np.asarray(image.convert("L" if image.mode in ("1", "L", "LA") else "RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise ExplorerError(f"{path}: not a readable PNG file ({exc})") from None
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return np.ascontiguousarray((pixels / 255.0).transpose(2, 0, 1))


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux), None where it cannot be told."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def load_data(spec: str, input_names: Sequence[str], base_dir: Path | None = None) -> Dataset:
    """Load a data spec (see the module doc); relative paths are relative to `base_dir`."""
    if spec.startswith("pose-synth:"):
        parts = spec.split(":")[1:]
        try:
            count, seed = int(parts[0]), int(parts[1])
            size = int(parts[2]) if len(parts) > 2 else 96
        except (IndexError, ValueError) as exc:
            raise ExplorerError(f"data {spec!r}: expected pose-synth:COUNT:SEED[:SIZE]") from exc
        if count <= 0 or size <= 8:
            raise ExplorerError(f"data {spec!r}: COUNT must be positive and SIZE larger than 8")
        need = count * 3 * size * size * 4  # float32 images; the labels are small beside them
        have = available_memory()
        if have is not None and need > have // 2:
            raise ExplorerError(
                f"data {spec!r}: {count} images of {size}x{size} need {need / 2**30:.1f} GiB, more than half the "
                f"{have / 2**30:.1f} GiB of memory available; use a smaller COUNT"
            )
        images, keypoints = make_pose_dataset(count, seed, size)
        return _split({"input": images, "keypoints": keypoints}, input_names, spec)
    path = Path(spec)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if path.is_file():
        return _split(_read_npz(path), input_names, str(path))
    if path.is_dir():
        shards = sorted(path.glob("*.npz"))
        if shards:
            parts_ = [_read_npz(s) for s in shards]
            keys = set(parts_[0])
            if any(set(p) != keys for p in parts_):
                raise ExplorerError(f"{path}: the .npz shards do not all hold the same arrays")
            return _split({k: np.concatenate([p[k] for p in parts_]) for k in sorted(keys)}, input_names, str(path))
        pngs = sorted(path.glob("*.png"))
        labels_file = path / "labels.json"
        if pngs and labels_file.is_file():
            try:
                table = json.loads(labels_file.read_text())
            except json.JSONDecodeError as exc:
                raise ExplorerError(f"{labels_file}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
            missing = [p.name for p in pngs if p.name not in table]
            if missing:
                raise ExplorerError(f"{labels_file}: no label for {', '.join(missing[:3])}")
            images = np.stack([read_png(p) for p in pngs])
            label = np.array([table[p.name] for p in pngs])
            name = "keypoints" if label.ndim == 3 else "labels"
            return _split({"input": images, name: label}, input_names, str(path))
        raise ExplorerError(f"{path}: a data folder needs *.npz shards, or *.png images with labels.json")
    raise ExplorerError(f"data {spec!r}: no such file or folder (or use pose-synth:COUNT:SEED)")
