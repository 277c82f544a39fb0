"""Enumeration of the legal DPU configurations of a board."""

from __future__ import annotations

from explorer.hardware.config import check_config
from explorer.hardware.database import load_database
from explorer.hardware.legal_space import count_space, enumerate_space

DB = load_database()


def test_zcu102_ip34_space_size() -> None:
    # 8 archs x 4 cores x RAM 2 x DSP 2 x depthwise 2 x avg pool 2 x elew 2 x softmax 2 x aug 2 x ReLU 2 x gating 2;
    # the ZU9EG has no UltraRAM, so uram_per_core is 0 only.
    (count,) = count_space(DB.board("zcu102"), ip_version="3.4")
    assert count.legal == 8 * 4 * 2**9
    assert 0 < count.fits < count.legal


def test_zcu102_ip41_space_size() -> None:
    # IP 4.1: ALU parallel 1/2/4 for the three PP-4 archs (B512, B800, B1152), 1/2/4/8 for the five PP-8 archs;
    # x 4 cores x RAM 2 x DSP 2 x softmax 2 x aug 2 x ReLU 2 x ALU LeakyReLU 2 x argmax 2 x gating 2.
    (count,) = count_space(DB.board("zcu102"), ip_version="4.1")
    assert count.legal == (3 * 3 + 5 * 4) * 4 * 2**8


def test_every_enumerated_point_is_legal_and_distinct() -> None:
    board = DB.board("ultra96-v2")
    seen = set()
    for point in enumerate_space(board, "4.0"):
        assert check_config(point.config, board.device) == []
        assert point.fits == point.fit.fits
        seen.add(point.config)
    assert len(seen) > 1000


def test_pynq_z2_space_respects_zynq7000_rules() -> None:
    counts = {c.ip_version: c for c in count_space(DB.board("pynq-z2"))}
    assert set(counts) == {"3.3", "3.4"}  # IP 4.x is not offered on Zynq-7000
    # no softmax, elew mult or clock gating: 8 archs x 4 cores x RAM 2 x DSP 2 x dw 2 x avg 2 x aug 2 x ReLU 2
    assert counts["3.4"].legal == 8 * 4 * 2**6
    assert counts["3.4"].fits < counts["3.4"].legal  # B4096 x 4 cannot fit a Z7020


def test_uram_board_offers_uram_choices() -> None:
    board = DB.board("kv260")
    urams = {p.config.uram_per_core for p in enumerate_space(board, "4.1", archs=["B4096"]) if p.config.cores == 1}
    assert 0 in urams and 46 in urams and max(urams) <= 64
    assert all(u % 2 == 0 for u in urams)
