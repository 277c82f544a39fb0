"""The generated designs against the conformance table (hw/block_design.yaml `dpu_pins`, `ip_params`) and
the points where they used to differ from AMD's reference designs (issue #15)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from explorer.errors import ExplorerError
from explorer.export.design import DPU_CELL, bd_data, block_design, legal_ip_params, vitis_connectivity
from explorer.export.writer import ExportRequest, export_design
from explorer.hardware.config import DpuConfig, parse_dpu_config, resolve
from explorer.hardware.database import load_database
from explorer.hardware.dpu_conf import render_dpu_conf
from tests.export.tclrun import run_build


def config(board: str, **fields: object) -> DpuConfig:
    db = load_database()
    return parse_dpu_config(fields, db.board(board), db=db)


def table_pins(ip_version: str) -> set[str]:
    table = bd_data()["dpu_pins"]["4.x" if ip_version.startswith("4") else "3.x"]
    names = [name for group in table.values() for name in group]
    return {name.format(i=i) for name in names for i in range(4)}


CASES = [
    ("ultra96-v2", {"arch": "B1600"}),
    ("zcu102", {"cores": 2, "clock_gating": True}),
    ("zcu102", {"cores": 4, "softmax": True, "clock_gating": True}),
    ("kv260", {"uram_per_core": 40}),
    ("zcu104", {"ip_version": "3.4", "elew_mult": False, "save_argmax": False, "softmax": True}),
    ("pynq-z2", {"arch": "B800", "clock_mhz": 150}),
]


@pytest.mark.parametrize(("board", "fields"), CASES)
def test_every_dpu_pin_and_parameter_is_in_the_conformance_table(board: str, fields: dict[str, object]) -> None:
    cfg = config(board, **fields)
    design = block_design(resolve(cfg), load_database().board(board))
    pins = {p.split("/", 1)[1] for net in design.nets for p in net.pins if p.startswith(f"{DPU_CELL}/")}
    pins |= {p.split("/", 1)[1] for link in design.intf_links for p in link if p.startswith(f"{DPU_CELL}/")}
    assert pins and pins <= table_pins(cfg.ip_version), pins - table_pins(cfg.ip_version)
    assert set(design.dpu.params) <= set(legal_ip_params(cfg.ip_version))


def test_each_core_drives_its_own_gated_clock() -> None:
    """Point 2: one clock-enable pin per core (dpu_2x_clk_ce, dpu1_2x_clk_ce, ...), no slice of a 1-bit pin."""
    design = block_design(resolve(config("zcu102", cores=2, clock_gating=True)), load_database().board("zcu102"))
    nets = {net.name: set(net.pins) for net in design.nets}
    assert nets["dsp_clk_ce0"] == {f"{DPU_CELL}/dpu_2x_clk_ce", "dpu_clk_wiz/clk_dsp0_ce"}
    assert nets["dsp_clk_ce1"] == {f"{DPU_CELL}/dpu1_2x_clk_ce", "dpu_clk_wiz/clk_dsp1_ce"}
    assert not [c for c in design.cells if c.ip == "xlslice"]


def test_ps_masters_the_preset_enables_are_switched_off() -> None:
    """Point 1: HPM0/HPM1_FPD off after the board preset (the KR260 dump); not a Zynq-7000 setting."""
    db = load_database()
    zu = block_design(resolve(config("kv260")), db.board("kv260"))
    assert zu.ps.params["PSU__USE__M_AXI_GP0"] == 0 and zu.ps.params["PSU__USE__M_AXI_GP1"] == 0
    z7 = block_design(resolve(config("pynq-z2", arch="B800")), db.board("pynq-z2"))
    assert not any(key.startswith("PSU__") for key in z7.ps.params)


def test_softmax_kernel_clock_is_aclk() -> None:
    """Point 3: prj_config names sfm_xrt_top_1.aclk (prj_config_102_3dpu, package_sfm_kernel.tcl)."""
    clocks = [pin for _, pin in vitis_connectivity(config("zcu102", softmax=True), load_database().board("zcu102"))["clocks"]]
    assert "sfm_xrt_top_1.aclk" in clocks and not [c for c in clocks if c.startswith("sfm") and "ap_clk" in c]


@pytest.mark.parametrize(("board", "fields", "ubank"), [("zcu102", {}, (0, 0, 0)), ("kv260", {"uram_per_core": 40}, (2, 17, 1))])
def test_dpu_conf_defines_every_bank_count(board: str, fields: dict[str, object], ubank: tuple[int, int, int]) -> None:
    """Point 4: UBANK and DBANK lines always, 0 when that memory is off."""
    text = render_dpu_conf(resolve(config(board, **fields)), load_database().board(board))
    found = dict(re.findall(r"`define def_([UD]BANK_\w+) (\d+)", text))
    assert (int(found["UBANK_IMG_N"]), int(found["UBANK_WGT_N"]), int(found["UBANK_BIAS"])) == ubank
    assert found["DBANK_IMG_N"] == found["DBANK_WGT_N"] == found["DBANK_BIAS"] == "0"


def test_clocks_above_what_the_ps_ports_take_are_refused_for_vivado(tmp_path: Path) -> None:
    """Point 5: the PS slave ports run at most at 333 MHz; a 350 MHz Vivado design is refused with the reason."""
    db = load_database()
    board = db.board("zcu102")
    fast = config("zcu102", clock_mhz=350)
    with pytest.raises(ExplorerError, match="350 MHz DPU clock is above the 333 MHz"):
        export_design(ExportRequest(fast, board), tmp_path / "vivado")
    export_design(ExportRequest(fast, board, flow="vitis"), tmp_path / "vitis")  # the platform clocks it there
    export_design(ExportRequest(config("zcu102", clock_mhz=325), board), tmp_path / "ok")


def test_clock_wizard_takes_its_input_frequency_from_the_ps() -> None:
    """Point 6: no PRIM_IN_FREQ (the KR260 dump lets the wizard read pl_clk0's 99.999001 MHz)."""
    for board, fields in itertools.islice(CASES, 3):
        design = block_design(resolve(config(board, **fields)), load_database().board(board))
        wizard = next(c for c in design.cells if c.ip == "clk_wiz")
        assert "PRIM_IN_FREQ" not in wizard.params


def test_the_stub_refuses_a_pin_the_dpu_does_not_have(tmp_path: Path) -> None:
    """The stub Vivado models the DPU's pins from its CONFIG: a core it does not have has no pins."""
    folder = tmp_path / "x"
    export_design(ExportRequest(config("zcu102", cores=1, clock_gating=True), load_database().board("zcu102")), folder)
    script = folder / "block_design.tcl"
    script.write_text(script.read_text() + f"\nconnect_bd_net -net bogus [get_bd_pins {DPU_CELL}/dpu1_2x_clk_ce]\n")
    with pytest.raises(AssertionError, match="dpu1_2x_clk_ce"):
        run_build(folder, env_repo=str(tmp_path / "repo"))
