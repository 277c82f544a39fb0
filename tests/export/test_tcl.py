"""Generated Tcl: quoting, golden files, and a full run against stub Vivado commands.

The stub (vivado_stub.tcl) models cells with the pins their IP has under the CONFIG values set, so the
assertions below check the design the scripts would build, not their text. Regenerate the golden files
after an intended change with:  UPDATE_GOLDEN=1 python -m pytest tests/export/test_tcl.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from explorer.export.design import bd_data, is_legal, legal_ip_params
from explorer.export.writer import ExportRequest, export_design
from explorer.hardware.config import DpuConfig, parse_dpu_config
from explorer.hardware.database import load_database
from explorer.templates import tcl_word
from tests.export.tclrun import DesignModel, parses, reachable, run_build, run_tcl, tcl_brace

GOLDEN = Path(__file__).with_name("golden")
SCRIPTS = ("build.tcl", "create_project.tcl", "block_design.tcl", "implement.tcl")
HOSTILE = [
    'evil"; exec touch pwned; "',
    "[exec touch pwned]",
    "$env(HOME) {unbalanced",
    "back\\slash ; puts hi\nnewline",
    "tab\there } ] [",
]


def export(tmp_path: Path, board: str, project: str = "dpu_explorer", **fields: object) -> Path:
    db = load_database()
    b = db.board(board)
    cfg = parse_dpu_config(fields, b, db=db)
    folder = tmp_path / f"{board}-export"
    export_design(ExportRequest(cfg, b, project=project, jobs=3), folder, force=True)
    return folder


@pytest.mark.parametrize("text", ["plain_name", "", *HOSTILE])
def test_tcl_word_is_one_literal_word(tmp_path: Path, text: str) -> None:
    out = tmp_path / "out.txt"
    run_tcl(
        f"set x {tcl_word(text)}\nset f [open {tcl_brace(str(out))} w]\nfconfigure $f -encoding utf-8\n"
        "puts -nonewline $f $x\nclose $f\n",
        tmp_path,
    )
    assert out.read_text(encoding="utf-8") == text
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("board", "fields"),
    [("ultra96v2", {"arch": "B1600", "clock_mhz": 200}), ("pynq-z2", {"arch": "B800", "clock_mhz": 150})],
)
def test_golden_files(tmp_path: Path, board: str, fields: dict[str, object]) -> None:
    folder = export(tmp_path, board, **fields)
    golden = GOLDEN / board
    for name in SCRIPTS:
        text = (folder / name).read_text()
        assert parses(folder / name), name
        path = golden / name
        if os.environ.get("UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert text == path.read_text(), f"{name} differs from {path} (UPDATE_GOLDEN=1 regenerates it)"


def check_design(model: DesignModel, cfg: DpuConfig, family: str) -> None:
    cells = model.cells
    # every connected pin belongs to a created cell (the stub also refused pins the IP lacks)
    for pins in model.nets.values():
        assert all(pin.split("/")[0] in cells for pin in pins)
    for a, b in model.intf:
        assert a.split("/")[0] in cells and b.split("/")[0] in cells
    # every DPU CONFIG value is legal for the IP version, and all of them were set
    dpu = next(name for name, vlnv in cells.items() if ":dpuczdx8g:" in vlnv.lower())
    assert cells[dpu].endswith(":" + cfg.ip_version)
    legal = legal_ip_params(cfg.ip_version)
    props = {k.removeprefix("CONFIG."): int(v) for k, v in model.props[dpu].items()}
    assert set(props) <= set(legal) and all(is_legal(v, legal[k]) for k, v in props.items())
    assert props["ARCH"] == int(cfg.arch[1:]) and props["VER_DPU_NUM"] == cfg.cores
    # clocks: the 2x clock is twice the DPU clock, and each drives the matching DPU pin
    wiz = model.props["dpu_clk_wiz"]
    freq = {wiz[f"CONFIG.CLK_OUT{n}_PORT"]: float(wiz[f"CONFIG.CLKOUT{n}_REQUESTED_OUT_FREQ"])
            for n in range(1, int(wiz["CONFIG.NUM_OUT_CLKS"]) + 1)}  # fmt: skip
    assert freq["clk_dpu"] == pytest.approx(cfg.clock_mhz)
    dsp_ports = [p for p in freq if p.startswith("clk_dsp")]
    assert len(dsp_ports) == (cfg.cores if cfg.clock_gating else 1)
    assert all(freq[p] == pytest.approx(2 * cfg.clock_mhz) for p in dsp_ports)
    net_of = {pin: name for name, pins in model.nets.items() for pin in pins}
    assert net_of[f"{dpu}/m_axi_dpu_aclk"] == net_of["dpu_clk_wiz/clk_dpu"]
    assert net_of[f"{dpu}/dpu_2x_clk"] == net_of[f"dpu_clk_wiz/{dsp_ports[0]}"]
    # one reset per clock domain, each synchronised to its clock
    for rst in ("rst_gen_reg", "rst_gen_clk", "rst_gen_clk_dsp"):
        assert cells[rst].split(":")[2] == "proc_sys_reset" and f"{rst}/slowest_sync_clk" in net_of
    for reset_pin in ("s_axi_aresetn", "m_axi_dpu_aresetn", "dpu_2x_resetn"):
        assert f"{dpu}/{reset_pin}" in net_of
    # interrupts reach the PS
    ps = next(name for name, vlnv in cells.items() if vlnv.split(":")[2] in ("zynq_ultra_ps_e", "processing_system7"))
    irq_pin = "pl_ps_irq0" if family == "zynq_ultrascale_plus" else "IRQ_F2P"
    assert net_of[f"{ps}/{irq_pin}"] == net_of["dpu_concat_irq/dout"]
    for i in range(cfg.cores):
        assert f"{dpu}/dpu{i}_interrupt" in net_of
    # no DPU master is left unconnected, and every one reaches a PS slave port
    masters = [p for p, role in model.intf_pins.items() if p.startswith(dpu + "/") and role == "master"]
    assert len(masters) == 3 * cfg.cores + int(cfg.softmax)
    for master in masters:
        ps_ports = {p for p in reachable(model, master) if p.startswith(ps + "/S_AXI")}
        assert ps_ports, f"{master} does not reach the PS"
    # every used PS slave port is clocked by the DPU clock, and the register master by the PS clock
    ps_data = bd_data()["processing_system"][family]
    by_port = {v["port"]: v["clock"] for v in ps_data["slave_ports"].values()}
    used = [b.split("/")[1] for _, b in model.intf if b.startswith(ps + "/")]
    assert used and all(net_of[f"{ps}/{by_port[port]}"] == net_of["dpu_clk_wiz/clk_dpu"] for port in used)
    reg_clock = f"{ps}/{ps_data['register_master']['clock']}"
    assert net_of[reg_clock] == net_of[f"{ps}/{ps_data['register_clock']['pin']}"] == net_of[f"{dpu}/s_axi_aclk"]
    # address map: the DPU registers at a 16M segment in the PS's data space, the rest auto-assigned
    explicit = [s for s in model.segments if s[0] == "explicit"]
    assert explicit == [
        ["explicit", f"{ps}/Data", f"{dpu}/S_AXI/reg0", "0x8F000000" if family != "zynq7000" else "0x4F000000", "16M"]
    ]
    assert ["auto"] in model.segments
    assert f"{dpu}/S_AXI" in reachable(model, f"{ps}/{'M_AXI_HPM0_LPD' if family != 'zynq7000' else 'M_AXI_GP0'}")
    # the flow: validated and saved, wrapper, runs with the job count, reports, platform, copies
    names = [c[0] for c in model.calls]
    assert names.index("validate_bd_design") < names.index("make_wrapper") < names.index("launch_runs")
    assert [c[2] for c in model.called("launch_runs")] == ["3", "3"]
    assert {Path(c[1]).name for c in model.called("report_utilization")} >= {"utilization.rpt"}
    assert model.called("report_timing_summary") and model.called("write_hw_platform")


@pytest.mark.parametrize(
    ("board", "fields"),
    [
        ("ultra96v2", {"arch": "B1600", "clock_mhz": 200}),
        ("zcu102", {"arch": "B4096", "cores": 4, "softmax": True, "clock_gating": True, "clock_mhz": 325}),
        ("zcu102", {"arch": "B2304", "cores": 2, "clock_gating": True, "clock_mhz": 333}),
        ("kv260", {"arch": "B4096", "cores": 1, "uram_per_core": 40, "ram_usage": "high"}),
        ("zcu104", {"arch": "B2304", "cores": 2, "ip_version": "3.4", "depthwise": False, "alu_parallel": 0}),
        ("pynq-z2", {"arch": "B800", "clock_mhz": 150}),
    ],
)
def test_build_runs_against_stub_vivado(tmp_path: Path, board: str, fields: dict[str, object]) -> None:
    folder = export(tmp_path, board, **fields)
    db = load_database()
    b = db.board(board)
    cfg = parse_dpu_config(fields, b, db=db)
    model = run_build(folder, env_repo=str(tmp_path / "dpu_ip"))
    assert model.project["part"] == b.part and model.project["board_part"].startswith(b.board_part.rsplit(":", 1)[0])
    assert model.project["ip_repo_paths"] == str(tmp_path / "dpu_ip")
    check_design(model, cfg, b.family)
    assert model.automation and "apply_board_preset 1" in model.automation[0][1]
    if b.family == "zynq7000":
        assert "FIXED_IO, DDR" in model.automation[0][1]
    for ext in ("bit", "hwh", "xsa"):
        assert (folder / "output" / f"dpu_explorer.{ext}").is_file()


def test_hostile_project_name_cannot_inject_tcl(tmp_path: Path) -> None:
    for n, name in enumerate(HOSTILE):
        folder = export(tmp_path / str(n), "ultra96v2", project=name, arch="B1152")
        model = run_build(folder, env_repo=str(tmp_path / "repo [x] $y"))
        assert model.project["name"] == name  # passed through as one literal word
        assert model.project["ip_repo_paths"] == str(tmp_path / "repo [x] $y")
        assert not list(tmp_path.rglob("pwned"))
        artifact = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")
        assert (folder / "output" / f"{artifact}.bit").is_file()


def test_missing_ip_repo_and_board_files(tmp_path: Path) -> None:
    folder = export(tmp_path, "zcu104", arch="B4096")
    with pytest.raises(AssertionError, match="set DPU_IP_REPO"):
        run_build(folder, env_repo="")
    # without the board files the PS would keep the IP's defaults and not boot: the build stops and says how to install them
    with pytest.raises(
        AssertionError,
        match=r"board part xilinx.com:zcu104:part0:1.1 is not installed.*xhub::install \[xhub::get_xitems \*zcu104\*\]",
    ):
        run_build(folder, env_repo=str(tmp_path), have_boards=False)


def test_ip_repo_given_at_export_time(tmp_path: Path) -> None:
    db = load_database()
    b = db.board("kv260")
    repo = tmp_path / "ip repo"
    export_design(ExportRequest(parse_dpu_config({}, b, db=db), b, ip_repo=str(repo)), tmp_path / "x")
    model = run_build(tmp_path / "x")
    assert model.project["ip_repo_paths"] == str(repo.resolve())
