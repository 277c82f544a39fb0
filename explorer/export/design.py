"""The block design of one design point as data: cells, their CONFIG values, nets, interface links, addresses.

`block_design(config, board)` is pure: it turns a DpuConfig and a board into the netlist the Vivado
templates in `tcl/` render (Python holds no Tcl text). The PS port map, DPU port names and the legal
IP parameter values are data in `hw/block_design.yaml` (docs/hardware.md §2.2, §3.1, §3.2, §3.4).

Shape, after the Vivado TRD (docs/hardware.md §3.2):
- the PS provides the register clock (100 MHz) and reset; a clocking wizard makes the DPU clock and
  its 2x clock (one gated 2x clock per core in low-power mode); one `proc_sys_reset` per clock domain;
- the PS register master drives the DPU's S_AXI at a 16 MB segment;
- instruction masters go to LPD (ZU+) or HP0 (Zynq-7000), data masters are spread flat over the HP
  ports; a port with several masters, or a width change, gets an `axi_interconnect`;
- the DPU (and softmax) interrupts go through an `xlconcat` to the PS.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from explorer.datafiles import data_path
from explorer.errors import ExplorerError
from explorer.fileio import safe_load
from explorer.hardware.config import DpuConfig, DpuSpec, require_legal
from explorer.hardware.database import Board


@functools.cache
def bd_data() -> dict[str, Any]:
    with data_path("hw", "block_design.yaml").open(encoding="utf-8") as handle:
        data: dict[str, Any] = safe_load(handle)
    return data


def legal_ip_params(ip_version: str) -> dict[str, Any]:
    """CONFIG name -> legal values (a list, or {min, max}) for the DPU IP `ip_version`."""
    table = dict(bd_data()["ip_params"]["4.x" if ip_version.startswith("4") else "3.x"])
    if ip_version == "4.0":
        table.pop("SAVE_ARGMAX_ENA")
    return table


DPU_CELL = "dpuczdx8g_0"


def is_legal(value: int, rule: Any) -> bool:
    if isinstance(rule, Mapping):
        return int(rule["min"]) <= value <= int(rule["max"])
    return value in rule


def dpu_ip_params(spec: DpuSpec) -> dict[str, int]:
    """The DPU cell's CONFIG.* values of a configuration (mapping of docs/hardware.md §2.2 and §2.3)."""
    config, ip = spec.config, spec.ip
    params: dict[str, int] = {
        "ARCH": int(config.arch[1:]),
        "VER_DPU_NUM": config.cores,
        "ARCH_IMG_BKGRP": 3 if config.ram_usage == "high" else 2,
        "LOAD_AUGM": int(config.channel_augmentation),
        "CONV_RELU_ADDON": 3 if config.relu_type == "relu_leakyrelu_relu6" else 2,
        "SFM_ENA": int(config.softmax),
        "S_AXI_CLK_INDEPENDENT": 1,  # registers on the PS's 100 MHz clock, as the TRD does
        "CLK_GATING_ENA": int(config.clock_gating),
        "CONV_DSP_CASC_MAX": config.dsp_cascade,
        "CONV_DSP_ACCU_ENA": 1 if config.dsp_usage == "high" else 0,
        "URAM_N_USER": config.uram_per_core,
        "TIMESTAMP_ENA": 1,
    }
    if ip.is_v4:
        # INFERRED mapping (docs/hardware.md §2.3): the v4.1 TRD script is not public.
        params["ALU_PARALLEL_USER"] = spec.alu_parallel
        params["ALU_LEAKYRELU"] = int(config.alu_leakyrelu)
        if config.ip_version == "4.1":
            params["SAVE_ARGMAX_ENA"] = int(config.save_argmax)
    else:
        params["DWCV_ENA"] = int(config.depthwise)
        params["ELEW_MULT_EN"] = int(config.elew_mult)
        params["POOL_AVERAGE"] = int(config.avg_pool)
    legal = legal_ip_params(config.ip_version)
    for name, value in params.items():
        if name not in legal or not is_legal(value, legal[name]):
            raise ExplorerError(f"CONFIG.{name} = {value} is not legal for DPU IP {config.ip_version} ({legal.get(name)})")
    return params


@dataclass(frozen=True)
class Cell:
    name: str
    ip: str  # catalog name (zynq_ultra_ps_e, clk_wiz, ...), or the exact VLNV for the DPU
    params: dict[str, Any] = field(default_factory=dict)
    exact_vlnv: bool = False


@dataclass(frozen=True)
class Net:
    name: str
    pins: tuple[str, ...]  # "cell/pin"; the first one drives the net


@dataclass(frozen=True)
class PortLink:
    """PS slave port `key` and the DPU masters that reach it (through `interconnect` when not None)."""

    key: str
    port: str
    masters: tuple[str, ...]
    interconnect: str | None


@dataclass(frozen=True)
class BlockDesign:
    family: str
    ps: Cell
    dpu: Cell
    cells: tuple[Cell, ...]  # every cell after the PS and the DPU
    nets: tuple[Net, ...]
    intf_links: tuple[tuple[str, str], ...]  # (master "cell/intf", slave "cell/intf")
    port_links: tuple[PortLink, ...]
    automation_rule: str
    address_space: str
    register_segment: str  # "dpu cell/S_AXI/reg0"
    register_offset: str
    register_range: str
    dpu_clock_mhz: float
    dsp_clock_mhz: float


def _ps_port_params(ps: Mapping[str, Any], used: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for block in ("register_clock", "reset", "interrupt", "register_master"):
        params.update(ps[block].get("params", {}))
    params.update(ps.get("after_preset", {}))  # masters the board preset enables and the design does not use
    for key in used:
        port = ps["slave_ports"][key]
        params[port["enable"]] = 1
        params[port["width_param"]] = port["width_bits"]
    return params


def check_vivado_clock(config: DpuConfig, board: Board) -> None:
    """The Vivado flow clocks the PS slave ports with the DPU clock, so the DPU clock may not exceed what
    they take (hw/block_design.yaml `slave_port_max_mhz`); the TRD would add a second PL clock instead."""
    limit = float(bd_data()["processing_system"][board.family]["slave_port_max_mhz"])
    if config.clock_mhz > limit:
        raise ExplorerError(
            f"a {config.clock_mhz:g} MHz DPU clock is above the {limit:g} MHz the PS slave ports run at in this "
            f"Vivado design (the Vitis AI TRD moves them to a second PL clock from 334 MHz on, which dpu-explorer "
            f"does not build yet); choose clock_mhz <= {limit:g}, or export --flow vitis"
        )


def _format_mhz(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def _assign_masters(
    config: DpuConfig, ports: Mapping[str, Any], ps: Mapping[str, Any], data_width: int
) -> dict[str, list[tuple[str, int]]]:
    """PS slave port -> the DPU masters (pin, width) on it: instructions on the instruction port, data masters
    spread flat over the data ports."""
    assignment: dict[str, list[tuple[str, int]]] = {}
    for i in range(config.cores):
        pin = ports["instruction_master"].format(i=i)
        assignment.setdefault(ps["instruction_ports"][0], []).append((pin, int(ports["instruction_width_bits"])))
    data_pins = [m.format(i=i) for i in range(config.cores) for m in ports["data_masters"]]
    if config.softmax:
        data_pins.append(ports["softmax_master"])
    for n, pin in enumerate(data_pins):
        assignment.setdefault(ps["data_ports"][n % len(ps["data_ports"])], []).append((pin, data_width))
    return assignment


def _clock_wizard(config: DpuConfig, family: str, ps: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The clocking wizard's CONFIG values and its 2x output ports (one per core when gated)."""
    dpu_mhz = float(config.clock_mhz)
    dsp_mhz = 2 * dpu_mhz  # dpu_2x_clk is exactly twice m_axi_dpu_aclk (docs/hardware.md §5)
    dsp_ports = [f"clk_dsp{i}" for i in range(config.cores)] if config.clock_gating else ["clk_dsp"]
    clock_ports: dict[str, float] = {"clk_dpu": dpu_mhz, **{p: dsp_mhz for p in dsp_ports}}
    # No PRIM_IN_FREQ: the wizard takes pl_clk0's real frequency (99.999001 MHz on the KR260 dump) from the
    # connected clock, which avoids the frequency-mismatch message BD 41-238 (KR260 TRD v4.1 dump).
    wiz: dict[str, Any] = {
        "RESET_TYPE": "ACTIVE_LOW",
        "RESET_PORT": "resetn",
        "USE_LOCKED": "true",
        "USE_RESET": "true",
        "NUM_OUT_CLKS": len(clock_ports),
        "PRIMITIVE": "Auto" if family == "zynq_ultrascale_plus" else "MMCM",
    }
    for n, (port, mhz) in enumerate(clock_ports.items(), start=1):
        wiz[f"CLKOUT{n}_USED"] = "true"
        wiz[f"CLK_OUT{n}_PORT"] = port
        wiz[f"CLKOUT{n}_REQUESTED_OUT_FREQ"] = _format_mhz(mhz)
        if family == "zynq_ultrascale_plus":
            wiz[f"CLKOUT{n}_MATCHED_ROUTING"] = "true"  # 1x and 2x edge-aligned (TRD, DSP48E2)
        if config.clock_gating and port != "clk_dpu":
            wiz[f"CLKOUT{n}_DRIVES"] = "Buffer_with_CE"
    return wiz, dsp_ports


@dataclass
class _Netlist:
    """Cells, nets and interface links as the block design is built (nets keep their first-connected order)."""

    cells: list[Cell] = field(default_factory=list)
    nets: dict[str, list[str]] = field(default_factory=dict)
    intf: list[tuple[str, str]] = field(default_factory=list)
    links: list[PortLink] = field(default_factory=list)

    def connect(self, net: str, *pins: str) -> None:
        self.nets.setdefault(net, []).extend(p for p in pins if p not in self.nets.get(net, []))


def _clocks_and_resets(
    n: _Netlist, config: DpuConfig, ports: Mapping[str, Any], ps: Mapping[str, Any], dsp_ports: list[str], irqs: list[str]
) -> None:
    """Register clock and PS reset, the DPU 1x/2x clocks (gated per core in low-power mode), one reset per
    domain, and the interrupts through the concat to the PS."""
    dpu, ps_name, cores = DPU_CELL, ps["cell"], config.cores
    n.connect("reg_clk", f"{ps_name}/{ps['register_clock']['pin']}", "dpu_clk_wiz/clk_in1", "rst_gen_reg/slowest_sync_clk")
    n.connect("reg_clk", f"{dpu}/{ports['s_axi_clock']}", f"{ps_name}/{ps['register_master']['clock']}")
    resets = ("dpu_clk_wiz/resetn", "rst_gen_reg/ext_reset_in", "rst_gen_clk/ext_reset_in", "rst_gen_clk_dsp/ext_reset_in")
    n.connect("ps_resetn", f"{ps_name}/{ps['reset']['pin']}", *resets)
    n.connect("clk_locked", "dpu_clk_wiz/locked", "rst_gen_clk/dcm_locked", "rst_gen_clk_dsp/dcm_locked")
    n.connect("dpu_clk", "dpu_clk_wiz/clk_dpu", "rst_gen_clk/slowest_sync_clk", f"{dpu}/{ports['m_axi_clock']}")
    n.connect("dsp_clk", f"dpu_clk_wiz/{dsp_ports[0]}", "rst_gen_clk_dsp/slowest_sync_clk", f"{dpu}/{ports['dsp_clock']}")
    if config.clock_gating:
        for i in range(1, cores):
            n.connect(f"dsp_clk{i}", f"dpu_clk_wiz/{dsp_ports[i]}", f"{dpu}/{ports['gated_dsp_clock'][i]}")
        for i in range(cores):  # each core's own clock-enable output drives its gated 2x clock
            n.connect(f"dsp_clk_ce{i}", f"{dpu}/{ports['gated_clock_enable'][i]}", f"dpu_clk_wiz/{dsp_ports[i]}_ce")
    n.connect("reg_resetn", "rst_gen_reg/peripheral_aresetn", f"{dpu}/{ports['s_axi_reset']}")
    n.connect("dpu_resetn", "rst_gen_clk/peripheral_aresetn", f"{dpu}/{ports['m_axi_reset']}")
    n.connect("dsp_resetn", "rst_gen_clk_dsp/peripheral_aresetn", f"{dpu}/{ports['dsp_reset']}")
    for k, source in enumerate(irqs):
        n.connect(f"irq{k}", f"{dpu}/{source}", f"dpu_concat_irq/In{k}")
    n.connect("irq", "dpu_concat_irq/dout", f"{ps_name}/{ps['interrupt']['pin']}")


def _masters_to_ps(n: _Netlist, ps: Mapping[str, Any], assignment: dict[str, list[tuple[str, int]]]) -> None:
    """Each PS slave port takes its DPU masters directly, or through an axi_interconnect where several share
    it or the widths differ."""
    ps_name = ps["cell"]
    for key in [k for k in ps["slave_ports"] if k in assignment]:
        port = ps["slave_ports"][key]
        group = assignment[key]
        target = f"{ps_name}/{port['port']}"
        n.connect("dpu_clk", f"{ps_name}/{port['clock']}")
        if len(group) == 1 and group[0][1] == int(port["width_bits"]):
            n.intf.append((f"{DPU_CELL}/{group[0][0]}", target))
            n.links.append(PortLink(key, port["port"], (group[0][0],), None))
            continue
        name = f"dpu_intc_{key.lower()}"
        n.cells.append(Cell(name, "axi_interconnect", {"NUM_SI": len(group), "NUM_MI": 1}))
        for j, (pin, _) in enumerate(group):
            n.intf.append((f"{DPU_CELL}/{pin}", f"{name}/S{j:02d}_AXI"))
            n.connect("dpu_clk", f"{name}/S{j:02d}_ACLK")
            n.connect("dpu_resetn", f"{name}/S{j:02d}_ARESETN")
        n.intf.append((f"{name}/M00_AXI", target))
        n.connect("dpu_clk", f"{name}/ACLK", f"{name}/M00_ACLK")
        n.connect("dpu_resetn", f"{name}/M00_ARESETN")
        n.connect("dpu_ic_resetn", "rst_gen_clk/interconnect_aresetn", f"{name}/ARESETN")
        n.links.append(PortLink(key, port["port"], tuple(p for p, _ in group), name))


def block_design(spec: DpuSpec, board: Board) -> BlockDesign:
    """The block design of `spec` on `board`: cells, CONFIG values, nets, AXI links and the address map."""
    config = spec.config
    require_legal(config, board.device)
    data = bd_data()
    ports, family = data["dpu_ports"], board.family
    ps = data["processing_system"][family]
    wiz, dsp_ports = _clock_wizard(config, family, ps)
    irqs = [ports["interrupt"].format(i=i) for i in range(config.cores)]
    if config.softmax:
        irqs.append(ports["softmax_interrupt"])
    # One proc_sys_reset per clock domain: registers (PS clock), DPU 1x, DPU 2x. The gated per-core 2x
    # clocks are one domain (same MMCM output frequency and phase); the DPU has a single dpu_2x_resetn.
    n = _Netlist(
        cells=[
            Cell("dpu_clk_wiz", "clk_wiz", wiz),
            Cell("rst_gen_reg", "proc_sys_reset"),
            Cell("rst_gen_clk", "proc_sys_reset"),
            Cell("rst_gen_clk_dsp", "proc_sys_reset"),
            Cell("dpu_concat_irq", "xlconcat", {"NUM_PORTS": len(irqs)}),
        ],
        intf=[(f"{ps['cell']}/{ps['register_master']['port']}", f"{DPU_CELL}/{ports['register_slave']}")],
    )
    _clocks_and_resets(n, config, ports, ps, dsp_ports, irqs)
    _masters_to_ps(n, ps, _assign_masters(config, ports, ps, int(ports["data_width_bits"][family])))
    return BlockDesign(
        family=family,
        ps=Cell(ps["cell"], ps["ip"], _ps_port_params(ps, [link.key for link in n.links])),
        dpu=Cell(DPU_CELL, spec.ip.vlnv, dpu_ip_params(spec), exact_vlnv=True),
        cells=tuple(n.cells),
        nets=tuple(Net(name, tuple(pins)) for name, pins in n.nets.items()),
        intf_links=tuple(n.intf),
        port_links=tuple(n.links),
        automation_rule=ps["automation_rule"],
        address_space=f"{ps['cell']}/{ps['address_space']}",
        register_segment=f"{DPU_CELL}/{ports['register_slave']}/{ports['register_segment']}",
        register_offset=ps["register_offset"],
        register_range=ps["register_range"],
        dpu_clock_mhz=float(config.clock_mhz),
        dsp_clock_mhz=2 * float(config.clock_mhz),
    )


def vitis_connectivity(config: DpuConfig, board: Board) -> dict[str, Any]:
    """`prj_config` content for the Vitis flow (DPU-PYNQ boards/*/prj_config, docs/hardware.md §3.3).

    Core 1 uses M_AXI_GP0:HPC0, M_AXI_HP0:HP0, M_AXI_HP2:HP1 and core 2 HP2/HP3 (DPU-PYNQ); the ports of
    cores 3 and 4 and of the softmax kernel continue the same list and are INFERRED. Zynq-7000 follows
    the DPU-PYNQ Pynq-Z2 file (M_AXI_GP0:HP0, M_AXI_HP0:HP1, M_AXI_HP2:HP2).
    """
    if board.family == "zynq7000":
        instr, data = ["HP0"], ["HP1", "HP2", "HP3", "HP0"]
    else:
        instr, data = ["HPC0"], ["HP0", "HP1", "HP2", "HP3", "HPC1", "HPC0"]
    sp: list[tuple[str, str]] = []
    n = 0
    for core in range(1, config.cores + 1):
        sp.append((f"DPUCZDX8G_{core}.M_AXI_GP0", instr[0]))
        for master in ("M_AXI_HP0", "M_AXI_HP2"):
            sp.append((f"DPUCZDX8G_{core}.{master}", data[n % len(data)]))
            n += 1
    if config.softmax:
        sp.append(("sfm_xrt_top_1.M_AXI", data[n % len(data)]))
    hz = round(config.clock_mhz * 1e6)
    clocks = [(hz, f"DPUCZDX8G_{c}.aclk") for c in range(1, config.cores + 1)]
    clocks += [(2 * hz, f"DPUCZDX8G_{c}.ap_clk_2") for c in range(1, config.cores + 1)]
    if config.softmax:
        clocks.append((hz, "sfm_xrt_top_1.aclk"))  # prj_config_102_3dpu; package_sfm_kernel.tcl `-clock aclk`
    return {"sp": sp, "clocks": clocks, "cores": config.cores, "softmax": config.softmax}
