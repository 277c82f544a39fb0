"""The block design as data: IP parameters from DpuConfig, PS ports, interconnects, clocks."""

from __future__ import annotations

import itertools

import pytest

from explorer.errors import ExplorerError, IllegalConfigError
from explorer.export.design import block_design, dpu_ip_params, is_legal, legal_ip_params, vitis_connectivity
from explorer.hardware.config import DpuConfig, parse_dpu_config, resolve
from explorer.hardware.database import load_database


def config(board: str, **fields: object) -> DpuConfig:
    db = load_database()
    return parse_dpu_config(fields, db.board(board), db=db)


@pytest.mark.parametrize("ip_version", ["3.3", "3.4", "4.0", "4.1"])
def test_every_option_maps_to_legal_ip_params(ip_version: str) -> None:
    for arch, cores, ram, dsp, gating in itertools.product(
        ("B512", "B1600", "B4096"), (1, 4), ("low", "high"), ("low", "high"), (False, True)
    ):
        cfg = config("zcu102", ip_version=ip_version, arch=arch, cores=cores, ram_usage=ram, dsp_usage=dsp, clock_gating=gating)
        params = dpu_ip_params(resolve(cfg))
        legal = legal_ip_params(ip_version)
        assert set(params) <= set(legal)
        assert all(is_legal(v, legal[k]) for k, v in params.items())
        assert params["ARCH"] == int(arch[1:]) and params["VER_DPU_NUM"] == cores
        assert params["ARCH_IMG_BKGRP"] == (3 if ram == "high" else 2)
        assert params["CONV_DSP_ACCU_ENA"] == (1 if dsp == "high" else 0)
        assert params["CLK_GATING_ENA"] == int(gating)
    # IP 4.x has no DWCV_ENA/POOL_AVERAGE/ELEW_MULT_EN to set; IP 3.x has no ALU parameters
    v4 = ip_version.startswith("4")
    assert ("DWCV_ENA" in params) is not v4 and ("ALU_PARALLEL_USER" in params) is v4
    assert ("SAVE_ARGMAX_ENA" in params) is (ip_version == "4.1")


def test_alu_parallel_default_is_half_pp() -> None:
    assert dpu_ip_params(resolve(config("zcu102", arch="B4096")))["ALU_PARALLEL_USER"] == 4
    assert dpu_ip_params(resolve(config("zcu102", arch="B4096", alu_parallel=2)))["ALU_PARALLEL_USER"] == 2


def test_uram_banks_and_illegal_configs_are_refused() -> None:
    db = load_database()
    assert dpu_ip_params(resolve(config("kv260", uram_per_core=40)))["URAM_N_USER"] == 40
    with pytest.raises(IllegalConfigError, match="softmax"):
        zynq7000_softmax = DpuConfig(
            arch="B800", ip_version="3.4", softmax=True, dsp_cascade=1, save_argmax=False, elew_mult=False
        )
        block_design(resolve(zynq7000_softmax), db.board("pynq-z2"))
    with pytest.raises(ExplorerError, match="URAM_N_USER"):
        dpu_ip_params(resolve(DpuConfig(uram_per_core=99)))


def test_zynqmp_ports_interconnects_and_clocks() -> None:
    db = load_database()
    design = block_design(resolve(config("zcu102", cores=4, softmax=True)), db.board("zcu102"))
    links = {link.key: link for link in design.port_links}
    # 4 instruction masters share LPD through one interconnect; 9 data masters over 6 HP/HPC ports
    assert links["LPD"].interconnect and len(links["LPD"].masters) == 4
    data = [m for key, link in links.items() if key != "LPD" for m in link.masters]
    assert sorted(data) == sorted([f"DPU{i}_M_AXI_DATA{j}" for i in range(4) for j in (0, 1)] + ["SFM_M_AXI"])
    assert {k for k, link in links.items() if link.interconnect} == {"LPD", "HP0", "HP1", "HP2"}
    assert design.dsp_clock_mhz == 2 * design.dpu_clock_mhz == 600
    assert design.register_offset == "0x8F000000" and design.register_range == "16M"
    one = block_design(resolve(config("zcu102", cores=1)), db.board("zcu102"))
    assert all(link.interconnect is None for link in one.port_links)  # one master per port, same width


def test_zynq7000_instruction_master_goes_through_a_width_converter() -> None:
    db = load_database()
    design = block_design(resolve(config("pynq-z2", arch="B800", clock_mhz=150)), db.board("pynq-z2"))
    links = {link.key: link for link in design.port_links}
    assert links["HP0"].masters == ("DPU0_M_AXI_INSTR",) and links["HP0"].interconnect  # 32-bit master on a 64-bit port
    assert links["HP1"].masters == ("DPU0_M_AXI_DATA0",) and links["HP2"].masters == ("DPU0_M_AXI_DATA1",)
    assert design.ps.params["PCW_S_AXI_HP1_DATA_WIDTH"] == 64 and design.register_offset == "0x4F000000"


def test_vitis_connectivity_follows_dpu_pynq() -> None:
    db = load_database()
    vitis = vitis_connectivity(config("zcu104", cores=2, clock_mhz=300), db.board("zcu104"))
    assert vitis["sp"][:3] == [
        ("DPUCZDX8G_1.M_AXI_GP0", "HPC0"),
        ("DPUCZDX8G_1.M_AXI_HP0", "HP0"),
        ("DPUCZDX8G_1.M_AXI_HP2", "HP1"),
    ]
    assert ("DPUCZDX8G_2.M_AXI_HP0", "HP2") in vitis["sp"] and ("DPUCZDX8G_2.M_AXI_HP2", "HP3") in vitis["sp"]
    assert (300_000_000, "DPUCZDX8G_1.aclk") in vitis["clocks"] and (600_000_000, "DPUCZDX8G_1.ap_clk_2") in vitis["clocks"]


@pytest.mark.parametrize(("board", "fields"), [("kv260", {"uram_per_core": 40}), ("pynq-z2", {"arch": "B800"})])
def test_dpu_conf_has_one_define_per_line(board: str, fields: dict[str, object]) -> None:
    from explorer.hardware.dpu_conf import render_dpu_conf

    db = load_database()
    text = render_dpu_conf(resolve(config(board, **fields)), db.board(board))
    lines = [line for line in text.splitlines() if not line.startswith("//")]
    assert lines and all(line.startswith("`define ") and line.count("`define") == 1 for line in lines)
    names = [line.split()[1] for line in lines]
    assert len(names) == len(set(names))
    if board == "kv260":
        assert "`define def_UBANK_WGT_N 17" in lines and "`define URAM_ENABLE" in lines
    else:
        assert "`define ZYNQ7000" in lines and "`define B800" in lines
