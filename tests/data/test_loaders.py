from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from explorer.data.loaders import load_data, read_png
from explorer.data.pose_synth import make_pose_dataset
from explorer.errors import ExplorerError


def write_png(path: Path, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_pose_synth_is_deterministic_and_in_range() -> None:
    a, ka = make_pose_dataset(5, 42)
    b, kb = make_pose_dataset(5, 42)
    assert np.array_equal(a, b) and np.array_equal(ka, kb)
    assert a.shape == (5, 3, 96, 96) and ka.shape == (5, 16, 2)
    assert a.min() >= 0 and a.max() <= 1 and np.abs(ka).max() < 1
    assert not np.array_equal(make_pose_dataset(5, 43)[1], ka)


def test_pose_synth_spec_and_digest() -> None:
    d = load_data("pose-synth:8:3", ["input"])
    assert len(d) == 8 and set(d.labels) == {"keypoints"} and d.digest == load_data("pose-synth:8:3", ["input"]).digest
    assert d.head(4).digest != d.digest and len(d.head(4)) == 4
    with pytest.raises(ExplorerError, match="COUNT:SEED"):
        load_data("pose-synth:x", ["input"])


def test_npz_file_and_folder_shards(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((6, 3, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "data.npz", images=x, labels=np.arange(6))
    d = load_data("data.npz", ["input"], base_dir=tmp_path)
    assert np.array_equal(d.inputs["input"], x) and d.labels["labels"].tolist() == list(range(6))
    shards = tmp_path / "shards"
    shards.mkdir()
    np.savez(shards / "a.npz", input=x[:3], labels=np.arange(3))
    np.savez(shards / "b.npz", input=x[3:], labels=np.arange(3, 6))
    assert np.array_equal(load_data(str(shards), ["input"]).inputs["input"], x)


def test_png_folder_with_labels(tmp_path: Path) -> None:
    img = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    write_png(tmp_path / "a.png", img)
    write_png(tmp_path / "b.png", img[::-1].copy())
    (tmp_path / "labels.json").write_text(json.dumps({"a.png": 1, "b.png": 2}))
    d = load_data(str(tmp_path), ["input"])
    assert d.inputs["input"].shape == (2, 3, 4, 5)
    np.testing.assert_allclose(read_png(tmp_path / "a.png"), img.transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert d.labels["labels"].tolist() == [1, 2]


def test_bad_data(tmp_path: Path) -> None:
    with pytest.raises(ExplorerError, match="no such file or folder"):
        load_data(str(tmp_path / "nope.npz"), ["input"])
    np.savez(tmp_path / "bad.npz", something=np.zeros((2, 3)))
    with pytest.raises(ExplorerError, match="no array for model input"):
        load_data(str(tmp_path / "bad.npz"), ["input", "other"])
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ExplorerError, match=r"not a readable \.npz"):
        load_data(str(tmp_path / "broken.npz"), ["input"])
    np.savez(tmp_path / "uneven.npz", input=np.zeros((2, 3)), labels=np.zeros(3))
    with pytest.raises(ExplorerError, match="different sample counts"):
        load_data(str(tmp_path / "uneven.npz"), ["input"])
