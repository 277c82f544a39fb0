"""The hardware database: devices, boards and look-ups."""

from __future__ import annotations

import pytest

from explorer.errors import UnknownNameError
from explorer.hardware.database import load_database

DB = load_database()


def test_devices_of_the_issue_are_present_with_verification_marks() -> None:
    for name in ["XC7Z020", "XCZU2EG", "XCZU3EG", "XCZU4EV", "XCZU5EV", "XCZU7EV", "XCZU9EG", "XCZU15EG", "XCK26"]:
        assert name in DB.devices
    # docs/hardware.md §4.1: these four are recalled values, not confirmed by a primary source.
    for name in ["XCZU2EG", "XCZU4EV", "XCZU5EV", "XCZU15EG"]:
        assert DB.devices[name].verified is False and "UNVERIFIED" in DB.devices[name].note
    zu9 = DB.devices["XCZU9EG"]
    assert (zu9.lut, zu9.ff, zu9.bram36, zu9.uram, zu9.dsp, zu9.verified) == (274080, 548160, 912, 0, 2520, True)
    assert DB.devices["XCK26"].uram == 64 and DB.devices["XC7Z020"].family == "zynq7000"


def test_boards_of_the_issue_are_present() -> None:
    names = {"PYNQ-Z2", "Ultra96-V2", "ZCU102", "ZCU104", "ZCU106", "KV260", "KR260", "ZUBoard-1CG"}
    assert names <= set(DB.boards)
    for board in DB.boards.values():
        assert board.ps_type == board.device.family
        assert board.cpu.cores in (2, 4) and board.cpu.clock_mhz > 0
        assert board.ddr.peak_gbps > 0


def test_board_facts() -> None:
    kv = DB.board("KV260")
    assert (kv.part, kv.device.name, kv.ddr.peak_gbps) == ("xck26-sfvc784-2LV-c", "XCK26", pytest.approx(19.2))
    z2 = DB.board("pynq-z2")
    assert (z2.cpu.kind, z2.cpu.cores, z2.ddr.peak_gbps) == ("cortex-a9", 2, pytest.approx(2.1))
    assert DB.board("ultra96-v2").dpu_clock_mhz == 200 and DB.board("zcu104").dpu_clock_mhz == 300
    assert DB.board("zcu102").dpu_pynq["arch"] == "B4096"
    assert "dpu_clock_mhz" in z2.unverified


@pytest.mark.parametrize("spelling", ["ultra96v2", "Ultra96-V2", "ULTRA96_V2", "ultra96 v2"])
def test_board_lookup_ignores_case_and_punctuation(spelling: str) -> None:
    assert DB.board(spelling).name == "Ultra96-V2"


def test_unknown_board_lists_known_and_closest() -> None:
    with pytest.raises(UnknownNameError) as info:
        DB.board("kv26")
    text = str(info.value)
    assert "unknown board 'kv26'" in text and "ZCU102" in text and "Did you mean 'KV260'?" in text
    with pytest.raises(UnknownNameError, match="Did you mean 'XCZU9EG'"):
        DB.device("xczu9")
