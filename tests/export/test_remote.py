"""`explore measure` against a real OpenSSH server on 127.0.0.1 that this test starts (Debian's openssh-server,
installed by .ci/run): a throw-away host key and client key in a temp folder, a free port, the server as this
user. It measures a CPU-only design point end to end for real, refuses a DPU design point on a host without
VART, and refuses one whose fingerprint the host's DPU does not report (a stand-in `xdputil`, clearly named)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from explorer.cli import main
from explorer.study.config import load_study
from explorer.study.runner import run_study

EXAMPLE = Path(__file__).parents[2] / "examples" / "pose"
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ssh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(host alias, ssh config file, folder on the host's PATH) of a real sshd on 127.0.0.1."""
    if SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("needs OpenSSH (server and client): apt-get install openssh-server (.ci/run does)")
    home = tmp_path_factory.mktemp("ssh")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)], check=True)
    shutil.copy(home / "client_key.pub", home / "authorized_keys")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    port = _free_port()
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host_key'}\nPidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"SetEnv PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin\nSubsystem sftp internal-sftp\n"
    )
    (home / "ssh_config").write_text(
        f"Host testboard\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {home / 'client_key'}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # the privilege-separation folder sshd wants
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            probe = subprocess.run(
                ["ssh", "-F", str(home / "ssh_config"), "-o", "BatchMode=yes", "testboard", "true"], capture_output=True
            )
            if probe.returncode == 0:
                break
            if server.poll() is not None:
                pytest.skip(f"sshd did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.1)
        else:
            pytest.skip("sshd did not answer on 127.0.0.1 within 10 s")
        yield "testboard", home / "ssh_config", bin_dir
    finally:
        server.terminate()
        server.wait(timeout=10)


def _study(folder: Path, split: int | None) -> Path:
    """One trial of the example model; split 0 puts everything on the CPU, none lets the DPU take its part."""
    folder.mkdir(parents=True, exist_ok=True)
    fixed = "    split.split: {choices: [0]}\n" if split == 0 else "    split.split: {choices: [1000]}\n"
    fixed += "    dpu.arch: {choices: [B512]}\n    dpu.cores: {choices: [1]}\n"  # fits the Ultra96: a feasible trial
    path = folder / "study.yaml"
    path.write_text(
        f"model: {EXAMPLE / 'mobilepose_dsnt.onnx'}\ndata: pose-synth:8:3\ncalibration_data: pose-synth:4:2\n"
        "board: ultra96v2\nsampler: random\nn_trials: 1\noutput: out\nseed: 3\n"
        "search_space:\n  files: [dpu_zynqmp.yaml, pruning.yaml, split.yaml]\n  overrides:\n"
        f"{fixed}    split.cpu_precision: {{choices: [fp32]}}\n"
        "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n"
    )
    run_study(load_study(path), progress=False)
    return path


def _measure(capsys: pytest.CaptureFixture[str], study: Path, config: Path, *extra: str) -> tuple[int, str, str]:
    argv = ["measure", str(study), "--trial", "0", "--host", "testboard", "--ssh-config", str(config)]
    code = main([*argv, "--remote-python", sys.executable, "--frames", "4", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_cpu_only_design_point_is_measured_on_the_host(
    ssh_host: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config, _ = ssh_host
    study = _study(tmp_path / "cpu", split=0)
    code, out, err = _measure(capsys, study, config, "--remote-dir", str(tmp_path / "remote"))
    assert code == 0, err
    assert "trial 0: fps_single" in out and "no DPU part: runs on the host's CPU" in out
    run = json.loads((study.parent / "out" / "trials" / "00000" / "measured.json").read_text())["run"]
    assert run["runtime"] == "onnxruntime (CPU only)" and run["fps_single"] > 0 and run["host"] == os.uname().nodename
    assert (tmp_path / "remote" / "study" / "trial_00000" / "result.json").is_file()  # it ran over there
    # --pareto picks the feasible front (here the one trial); a second run is kept in the history
    argv = ["measure", str(study), "--pareto", "--top", "1", "--host", "testboard", "--ssh-config", str(config)]
    code = main([*argv, "--remote-python", sys.executable, "--frames", "4", "--remote-dir", str(tmp_path / "remote")])
    out, err = capsys.readouterr()
    assert code == 0, err
    history = json.loads((study.parent / "out" / "trials" / "00000" / "measured.json").read_text())["history"]
    assert [entry["kind"] for entry in history].count("run") == 2


def test_a_dpu_design_point_needs_vart_and_the_right_fingerprint(
    ssh_host: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config, bin_dir = ssh_host
    study = _study(tmp_path / "dpu", split=None)
    measured = study.parent / "out" / "trials" / "00000" / "measured.json"
    code, _, err = _measure(capsys, study, config)
    assert code == 1 and "has no `xdputil` (not a Vitis AI image with VART)" in err
    assert not measured.exists()  # nothing recorded as measured
    # a stand-in for `xdputil query` (this test's, not AMD's): a DPU whose fingerprint is another design's
    stand_in = bin_dir / "xdputil"
    stand_in.write_text(
        '#!/bin/sh\necho \'{"kernels": [{"DPU Arch": "DPUCZDX8G_ISA1_B512", "fingerprint": "0x101000012010100"}]}\'\n'
    )
    stand_in.chmod(0o755)
    try:
        code, _, err = _measure(capsys, study, config)
    finally:
        stand_in.unlink()
    assert code == 1 and "but the DPU on testboard reports 0x101000012010100" in err and "arch.json fingerprint is 0x" in err
    assert not measured.exists()


def test_measure_needs_a_choice_of_trials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = _study(tmp_path / "s", split=0)
    for extra, message in (
        ([], "choose what to measure: --trial N (repeatable) or --pareto"),
        (["--pareto", "--top", "0"], "--top 0: measure at least 1 trial"),
        (["--pareto", "--trial", "0"], "give --trial N (repeatable) or --pareto, not both"),
    ):
        code = main(["measure", str(study), "--host", "nowhere", *extra])
        assert code == 1 and message in capsys.readouterr().err


def test_remote_commands_are_quoted_and_paths_checked() -> None:
    from explorer.errors import ExplorerError
    from explorer.export.remote import Host, plain_remote_path, safe_name

    host = Host("root@board", 2222, Path("/keys/id"), Path("/cfg"))
    argv = host.ssh("sh", "-c", "cd 'a b' && python3 run_on_board.py; rm -rf /")
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"] and argv[-2] == "root@board"
    assert argv[-1] == "sh -c 'cd '\"'\"'a b'\"'\"' && python3 run_on_board.py; rm -rf /'"  # one argument to sh -c
    assert argv[3:5] == ["-F", "/cfg"] and "-p" in argv and "-i" in argv
    assert host.scp_to(Path("/tmp/x"), "dir/study")[-1] == "root@board:dir/study" and "-P" in host.scp_to(Path("/x"), "d")
    assert safe_name("my study; rm -rf ~") == "my_study__rm_-rf__"
    for bad in ("a b", "$(reboot)", "-oProxyCommand=x", "x;y"):
        with pytest.raises(ExplorerError, match="use letters, digits"):
            plain_remote_path(bad)


def test_a_study_measures_its_best_points_and_recalibrates(
    ssh_host: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`measure:` in a study: every 2 trials the best feasible design point is run on the host and a profile is
    refitted from what was measured; later trials are timed with it."""
    _, config, _ = ssh_host
    study = tmp_path / "study.yaml"
    study.write_text(
        f"model: {EXAMPLE / 'mobilepose_dsnt.onnx'}\ndata: pose-synth:8:3\ncalibration_data: pose-synth:4:2\n"
        "board: ultra96v2\nsampler: random\nn_trials: 4\noutput: out\nseed: 3\n"
        "search_space:\n  files: [dpu_zynqmp.yaml, pruning.yaml, split.yaml]\n  overrides:\n"
        "    split.split: {choices: [0]}\n    split.cpu_precision: {choices: [fp32]}\n"
        "    dpu.arch: {choices: [B512]}\n    dpu.cores: {choices: [1]}\n"
        "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n"
        f"measure: {{host: testboard, ssh_config: {config}, remote_python: {sys.executable}, "
        f"remote_dir: {tmp_path / 'remote'}, frames: 4, top: 1, every: 2, recalibrate: true}}\n"
    )
    code = main(["run", str(study), "--no-progress", "--no-report"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "measure: trial " in out and "measured on" in out and "measure: recalibrated on" in out
    profile = tmp_path / "out" / "calibration" / "profile.yaml"
    assert profile.is_file() and "trials from now on are timed with" in out
    # the study's own model is what the profile is for: fitted at full strength, not cross-validated over networks
    strength = yaml.safe_load(profile.read_text())["held_toward_shipped"]["strength"]
    assert strength["value"] == 1.0 and strength["chosen_by"] == "the study (its own model's rows)"
    measured = [p for p in (tmp_path / "out" / "trials").glob("*/measured.json")]
    assert measured and all(json.loads(p.read_text())["run"]["runtime"] == "onnxruntime (CPU only)" for p in measured)
