"""The `explore` command line: JSON contracts, error messages and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer import __version__
from explorer.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"explore {__version__}"


def test_hw_resources_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "hw", "resources", "--board", "kv260", "--arch", "B4096", "--cores", "1", "--uram-per-core", "46", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert {"lut", "ff", "bram36", "uram", "dsp", "peak_gops", "fits", "headroom"} <= set(data)
    assert data["source"] == "model"
    assert data["uram"] == 46 and data["dsp"] == 710 and data["fits"] is True
    assert data["peak_gops"] == pytest.approx(4096 * 300 / 1000)
    assert set(data["headroom"]) == {"lut", "ff", "bram36", "uram", "dsp"}
    assert data["headroom"]["dsp"] == pytest.approx(0.95 - 710 / 1248, abs=1e-6)


def test_hw_resources_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "hw",
        "resources",
        "--board",
        "zcu104",
        "--arch",
        "B2304",
        "--cores",
        "2",
        "--ram-usage",
        "high",
        "--dsp-usage",
        "low",
        "--uram-per-core",
        "0",
        "--depthwise",
        "--avg-pool",
        "--no-softmax",
        "--no-channel-augmentation",
        "--elew-mult",
        "--relu-type",
        "relu_relu6",
        "--alu-parallel",
        "2",
        "--no-alu-leakyrelu",
        "--no-save-argmax",
        "--clock-gating",
        "--dsp-cascade",
        "3",
        "--clock-mhz",
        "250",
        "--ip-version",
        "4.1",
        "--ceiling",
        "lut=0.7,dsp=0.8",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    cfg = data["config"]
    assert (cfg["arch"], cfg["cores"], cfg["ram_usage"], cfg["dsp_usage"], cfg["channel_augmentation"]) == (
        "B2304",
        2,
        "high",
        "low",
        False,
    )
    assert (cfg["relu_type"], cfg["alu_parallel"], cfg["clock_gating"], cfg["dsp_cascade"], cfg["clock_mhz"]) == (
        "relu_relu6",
        2,
        True,
        3,
        250,
    )
    assert data["ceilings"]["lut"] == 0.7 and data["ceilings"]["dsp"] == 0.8 and data["ceilings"]["ff"] == 0.8


def test_hw_resources_text_labels_estimates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hw", "resources", "--board", "ultra96-v2", "--arch", "B1600")
    assert code == 0
    assert "source: model" in out and "BRAM36" in out and "headroom" in out


def test_dpu_file_and_flag_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dpu = tmp_path / "dpu.yaml"
    dpu.write_text("dpu:\n  arch: B1152\n  cores: 2\n  ram_usage: high\n")
    code, out, _ = run(capsys, "hw", "resources", "--board", "zcu102", "--dpu", str(dpu), "--cores", "3", "--json")
    assert code == 0
    cfg = json.loads(out)["config"]
    assert (cfg["arch"], cfg["cores"], cfg["ram_usage"]) == ("B1152", 3, "high")


def test_preset_is_the_boards_published_design_and_options_override_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "hw", "resources", "--board", "kv260", "--preset", "dpu-pynq", "--json")
    assert code == 0
    data = json.loads(out)
    # DPU-PYNQ's KV260 overlay (hw/boards.yaml): B4096 with UltraRAM, which fits the K26
    assert (data["config"]["arch"], data["config"]["uram_per_core"], data["config"]["save_argmax"]) == ("B4096", 46, True)
    assert data["fits"] and data["hint"] is None
    dpu = tmp_path / "dpu.yaml"
    dpu.write_text("arch: B3136\n")
    code, out, _ = run(
        capsys, "hw", "resources", "--board", "kv260", "--preset", "dpu-pynq", "--dpu", str(dpu), "--clock-mhz", "250", "--json"
    )
    cfg = json.loads(out)["config"]
    assert code == 0 and (cfg["arch"], cfg["clock_mhz"], cfg["uram_per_core"]) == ("B3136", 250, 46)


def test_defaults_that_do_not_fit_point_at_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hw", "resources", "--board", "kv260")
    assert code == 0 and "fits under the ceilings: NO" in out and "hint: " in out and "--preset dpu-pynq" in out
    code, out, _ = run(capsys, "hw", "resources", "--board", "kv260", "--arch", "B4096", "--json")
    assert not json.loads(out)["fits"] and json.loads(out)["hint"] is None  # the user chose: no advice


def test_dpu_file_problems_name_file_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dpu = tmp_path / "dpu.yaml"
    dpu.write_text("dpu:\n  arch: B4096\n  core: 2\n  ram_usage: huge\n")
    code, out, err = run(capsys, "hw", "resources", "--board", "zcu102", "--dpu", str(dpu))
    assert code == 2 and out == ""
    assert f"{dpu}: 2 problem(s)" in err
    assert "dpu.core: unknown key 'core'; did you mean 'cores'?" in err
    assert "dpu.ram_usage: must be one of low, high" in err
    assert "Traceback" not in err


def test_broken_yaml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dpu = tmp_path / "dpu.yaml"
    dpu.write_text("arch: B4096\ncores: [2\n")
    code, _, err = run(capsys, "hw", "resources", "--board", "zcu102", "--dpu", str(dpu))
    assert code == 1 and f"{dpu}:3:" in err and "invalid YAML" in err


def test_missing_dpu_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "hw", "resources", "--board", "zcu102", "--dpu", str(tmp_path / "nope.yaml"))
    assert code == 1 and "no such file" in err


def test_illegal_combination_names_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "hw", "resources", "--board", "pynq-z2", "--softmax")
    assert code == 3 and out == ""
    assert "[softmax-zynq7000]" in err and "Traceback" not in err


def test_bad_flag_value_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "hw", "resources", "--board", "zcu102", "--cores", "many")
    assert code == 2 and "cores: expected an integer" in err


def test_unknown_board_lists_boards_and_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "hw", "resources", "--board", "zcu10")
    assert code == 1
    assert "unknown board 'zcu10'" in err and "KV260" in err and "Did you mean" in err


def test_bad_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "hw", "resources", "--board", "zcu102", "--ceiling", "dsp=1.5")
    assert code == 1 and "ceiling for dsp must be in (0, 1]" in err
    code, _, err = run(capsys, "hw", "resources", "--board", "zcu102", "--ceiling", "bram=0.5")
    assert code == 1 and "unknown resource 'bram'" in err


def test_arch_json_writes_file_and_prints_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "sub" / "arch.json"
    code, out, _ = run(
        capsys,
        "hw",
        "arch-json",
        "--board",
        "ultra96-v2",
        "--arch",
        "B1600",
        "--ip-version",
        "4.0",
        "--no-save-argmax",
        "-o",
        str(out_file),
        "--json",
    )
    assert code == 0
    assert json.loads(out) == {"fingerprint": "0x101000016010404", "target": "DPUCZDX8G_ISA1_B1600"}
    assert json.loads(out_file.read_text()) == {"fingerprint": "0x101000016010404"}


def test_arch_json_isa0_registered_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "hw", "arch-json", "--board", "zcu102", "--ip-version", "3.4", "--no-elew-mult", "--no-save-argmax", "--json"
    )
    assert code == 0 and json.loads(out) == {"fingerprint": "0x1000020f6014407", "target": "DPUCZDX8G_ISA0_B4096_MAX_BG2"}


def test_hw_space_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hw", "space", "--board", "pynq-z2", "--json")
    assert code == 0
    data = json.loads(out)
    assert [v["ip_version"] for v in data["ip_versions"]] == ["3.3", "3.4"]
    assert data["legal"] == 2 * 8 * 4 * 2**6 and 0 < data["fits"] < data["legal"]


def test_hw_space_rejects_ip_for_family(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "hw", "space", "--board", "pynq-z2", "--ip-version", "4.1")
    assert code == 1 and "not available for PYNQ-Z2" in err


def test_hw_devices_and_boards_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hw", "devices")
    assert code == 0 and "XCZU9EG" in out and "UNVERIFIED" in out
    code, out, _ = run(capsys, "hw", "boards", "--json")
    boards = {b["name"]: b for b in json.loads(out)}
    assert boards["KV260"]["ddr"]["peak_gbps"] == pytest.approx(19.2)
    assert boards["PYNQ-Z2"]["cpu"] == {"kind": "cortex-a9", "cores": 2, "clock_mhz": 650}


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["hw", "resources"])
    assert info.value.code == 2
    assert "--board" in capsys.readouterr().err
