"""DpuConfig parsing (every problem with its path) and the legality rules (each names its rule)."""

from __future__ import annotations

import pytest

from explorer.errors import ConfigError, IllegalConfigError
from explorer.hardware.config import DpuConfig, check_config, defaults_for, parse_dpu_config, require_legal, resolve
from explorer.hardware.database import load_database

DB = load_database()
ZU9, Z7020, ZU7, K26 = DB.device("XCZU9EG"), DB.device("XC7Z020"), DB.device("XCZU7EV"), DB.device("XCK26")


def rules(config: DpuConfig, device: object) -> set[str]:
    return {v.rule for v in check_config(config, device)}  # type: ignore[arg-type]


def z7(**changes: object) -> DpuConfig:
    fields: dict[str, object] = dict(ip_version="3.4", elew_mult=False, save_argmax=False, dsp_cascade=1, clock_mhz=150)
    fields.update(changes)
    return DpuConfig(**fields)  # type: ignore[arg-type]


def test_defaults_are_legal_on_every_board() -> None:
    for board in DB.boards.values():
        cfg = parse_dpu_config({}, board)
        assert check_config(cfg, board.device) == [], board.name
        assert cfg.clock_mhz == board.dpu_clock_mhz


def test_family_defaults() -> None:
    z = defaults_for(DB.board("pynq-z2"))
    assert (z["ip_version"], z["elew_mult"], z["save_argmax"], z["dsp_cascade"]) == ("3.4", False, False, 1)
    u = defaults_for(DB.board("kv260"))
    assert (u["ip_version"], u["elew_mult"], u["save_argmax"], u["dsp_cascade"]) == ("4.1", True, True, 4)
    assert defaults_for(DB.board("kv260"), "4.0")["save_argmax"] is False


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"softmax": True}, "softmax-zynq7000"),
        ({"elew_mult": True}, "elew-mult-zynq7000"),
        ({"clock_gating": True}, "clock-gating-zynq7000"),
        ({"dsp_cascade": 4}, "dsp-cascade-zynq7000"),
        ({"uram_per_core": 2}, "uram-device"),
        ({"ip_version": "4.1", "elew_mult": True}, "ip-family"),
        ({"clock_mhz": 250}, "clock-range"),
    ],
)
def test_zynq7000_rules(changes: dict[str, object], rule: str) -> None:
    assert rule in rules(z7(**changes), Z7020)
    assert rules(z7(), Z7020) == set()


def test_the_same_options_are_legal_on_ultrascale_plus() -> None:
    cfg = DpuConfig(softmax=True, elew_mult=True, clock_gating=True, dsp_cascade=4)
    assert rules(cfg, ZU9) == set()


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"depthwise": False}, "v4-fixed-options"),
        ({"avg_pool": False}, "v4-fixed-options"),
        ({"elew_mult": False}, "v4-fixed-options"),
        ({"arch": "B512", "alu_parallel": 8}, "alu-parallel"),
        ({"alu_parallel": 3}, "alu-parallel"),
        ({"ip_version": "4.0", "save_argmax": True}, "save-argmax"),
        ({"cores": 5}, "cores"),
        ({"dsp_cascade": 9}, "dsp-cascade"),
        ({"clock_mhz": 500}, "clock-range"),
        ({"arch": "B2048"}, "arch"),
        ({"ip_version": "5.0"}, "ip-version"),
    ],
)
def test_ip4_and_general_rules(changes: dict[str, object], rule: str) -> None:
    assert rule in rules(DpuConfig(**changes), ZU9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"alu_parallel": 4}, "alu-parallel"),
        ({"alu_leakyrelu": True}, "alu-leakyrelu"),
        ({"save_argmax": True}, "save-argmax"),
    ],
)
def test_ip3_rejects_ip4_options(changes: dict[str, object], rule: str) -> None:
    cfg = DpuConfig(**{"ip_version": "3.4", "save_argmax": False, **changes})  # type: ignore[arg-type]
    assert rule in rules(cfg, ZU9)


def test_ip3_allows_disabling_depthwise_avgpool_elew() -> None:
    cfg = DpuConfig(ip_version="3.4", save_argmax=False, depthwise=False, avg_pool=False, elew_mult=False)
    assert rules(cfg, ZU9) == set()


def test_uram_rules() -> None:
    assert "uram-device" in rules(DpuConfig(uram_per_core=46), ZU9)  # ZU9EG has no UltraRAM
    assert "uram-multiple" in rules(DpuConfig(uram_per_core=45), K26)  # B4096 banks need 2 URAM each
    assert rules(DpuConfig(uram_per_core=46), K26) == set()
    assert "uram-capacity" in rules(DpuConfig(uram_per_core=46, cores=2), K26)  # 92 > 64
    assert rules(DpuConfig(uram_per_core=46, cores=2), ZU7) == set()  # 92 <= 96 (ZCU104 Vitis TRD)
    # B4096 low RAM has 16 + 17 + 1 = 34 banks = 68 URAM at most; high RAM 42 banks, capped by URAM_N_USER 84.
    assert "uram-max" in rules(DpuConfig(uram_per_core=70), ZU7)
    assert "uram-max" not in rules(DpuConfig(uram_per_core=70, ram_usage="high"), ZU7)


def test_violations_say_why_and_where_from() -> None:
    with pytest.raises(IllegalConfigError) as info:
        require_legal(z7(softmax=True, clock_gating=True), Z7020)
    text = str(info.value)
    assert "[softmax-zynq7000]" in text and "PG338" in text and "[clock-gating-zynq7000]" in text
    assert len(info.value.violations) == 2


def test_parse_reports_every_problem_with_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_dpu_config(
            {
                "arhc": "B4096",
                "cores": "two",
                "ram_usage": "medium",
                "depthwise": "yes",
                "clock_mhz": "fast",
                "uram_per_core": 200,
            },
            DB.board("zcu104"),
            source="dpu.yaml",
            path="dpu",
        )
    problems = {p.path: p.message for p in info.value.problems}
    assert set(problems) == {"dpu.arhc", "dpu.cores", "dpu.ram_usage", "dpu.depthwise", "dpu.clock_mhz", "dpu.uram_per_core"}
    assert "did you mean 'arch'" in problems["dpu.arhc"]
    assert "expected an integer" in problems["dpu.cores"]
    assert "low, high" in problems["dpu.ram_usage"]
    assert "at most 84" in problems["dpu.uram_per_core"]
    assert str(info.value).startswith("dpu.yaml: 6 problem(s):")


def test_parse_accepts_yaml_spellings() -> None:
    cfg = parse_dpu_config(
        {"arch": 1600, "ip_version": 4.0, "cores": "2", "relu_type": "RELU_RELU6", "save_argmax": False}, DB.board("ultra96-v2")
    )
    assert (cfg.arch, cfg.ip_version, cfg.cores, cfg.relu_type) == ("B1600", "4.0", 2, "relu_relu6")
    assert cfg.clock_mhz == 200


def test_effective_alu_parallel() -> None:
    assert resolve(DpuConfig(arch="B4096")).alu_parallel == 4
    assert resolve(DpuConfig(arch="B512")).alu_parallel == 2
    assert resolve(DpuConfig(arch="B4096", alu_parallel=8)).alu_parallel == 8
