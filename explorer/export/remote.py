"""Measuring an exported design point on a board over SSH (`explore measure`, issue #14).

The system OpenSSH client does the work (`ssh`, `scp`), so the user's own configuration applies (hosts,
keys, jump hosts); `--ssh-config FILE` passes another one (`ssh -F`). Every remote command is quoted with
`shlex`. Nothing here fakes a measurement: the numbers are what deploy/run_on_board.py printed on the host.

Before a design point with a DPU part runs, the host's DPU fingerprint (`xdputil query`, docs/hardware.md §1.8)
must equal the design's `arch.json` fingerprint, the check VART itself makes when it loads the model; a
hardware fingerprint of 0 (the Vivado flow) skips it, as VART does.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError

SSH_TIMEOUT_S = 600  # one remote step (copy, fingerprint query, a run of a few hundred frames)


@dataclass(frozen=True)
class Host:
    target: str  # [USER@]HOST, or a Host alias of the SSH configuration
    port: int | None = None
    identity: Path | None = None
    ssh_config: Path | None = None

    def _options(self, port_flag: str) -> list[str]:
        out = ["-o", "BatchMode=yes"]  # never prompt: a missing key is an error, not a hang
        if self.ssh_config is not None:
            out += ["-F", str(self.ssh_config)]
        if self.port is not None:
            out += [port_flag, str(self.port)]
        if self.identity is not None:
            out += ["-i", str(self.identity)]
        return out

    def ssh(self, *command: str) -> list[str]:
        return ["ssh", *self._options("-p"), self.target, shlex.join(command)]

    def scp_to(self, local: Path, remote: str) -> list[str]:
        return ["scp", "-q", "-r", *self._options("-P"), str(local), f"{self.target}:{plain_remote_path(remote)}"]

    def scp_from(self, remote: str, local: Path) -> list[str]:
        return ["scp", "-q", *self._options("-P"), f"{self.target}:{plain_remote_path(remote)}", str(local)]


SAFE_PATH = re.compile(r"[A-Za-z0-9._/~+-]+")


def plain_remote_path(path: str) -> str:
    """A remote path scp passes on unchanged: with the SFTP protocol (scp's default since OpenSSH 9.0) no shell
    reads it, with the old protocol one does, so only characters that mean the same to both are accepted."""
    if not SAFE_PATH.fullmatch(path) or path.startswith("-"):
        raise ExplorerError(f"remote path {path!r}: use letters, digits and . _ - + / ~ only (it goes through scp)")
    return path


def safe_name(text: str) -> str:
    """`text` as one remote path component."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text).lstrip("-") or "study"


def _run(argv: list[str], what: str, host: Host) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SSH_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ExplorerError(f"{argv[0]} not found: install the OpenSSH client to measure on {host.target}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ExplorerError(f"{what} on {host.target}: no answer within {SSH_TIMEOUT_S} s") from exc
    if done.returncode == 255 and argv[0] in ("ssh", "scp"):
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ExplorerError(f"cannot reach {host.target} ({what}): {last}")
    return done


FINGERPRINT = re.compile(r'"fingerprint"\s*:\s*"?(0x[0-9a-fA-F]+|\d+)"?')


def host_fingerprints(host: Host) -> list[str] | None:
    """The DPU fingerprints `xdputil query` reports on the host (one per core), or None without xdputil."""
    done = _run(host.ssh("sh", "-c", "command -v xdputil >/dev/null 2>&1 || exit 127; xdputil query"), "xdputil query", host)
    if done.returncode == 127:
        return None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ExplorerError(f"xdputil query on {host.target} failed: {last}")
    return [_normal(value) for value in FINGERPRINT.findall(done.stdout)]


def _normal(value: str) -> str:
    number = int(value, 16) if value.lower().startswith("0x") else int(value)
    return f"0x{number:x}"


def check_fingerprint(host: Host, wanted: str, trial: int) -> str:
    """Refuse a design point the host's DPU cannot run; returns what was checked, for the user."""
    found = host_fingerprints(host)
    if found is None:
        raise ExplorerError(
            f"trial {trial} has a DPU part, but {host.target} has no `xdputil` (not a Vitis AI image with VART): "
            "measure it on the board it was built for, or choose a design point that runs on the CPU only"
        )
    if not found:
        raise ExplorerError(f"xdputil query on {host.target} reported no DPU fingerprint: is the DPU overlay loaded?")
    want = _normal(wanted)
    if all(value == "0x0" for value in found):
        return f"{host.target} reports fingerprint 0 (Vivado flow): not checked, as VART does not"
    if want not in found:
        raise ExplorerError(
            f"trial {trial}: the design's arch.json fingerprint is {want}, but the DPU on {host.target} reports "
            f"{', '.join(sorted(set(found)))}: the compiled model would not load there. Build and load this design "
            "point's bitstream first, or measure a design point that matches the board's DPU"
        )
    return f"fingerprint {want} matches the DPU on {host.target}"


def run_remote(
    host: Host, deploy: Path, remote_dir: str, python: str, frames: int, threads: int, local_result: Path
) -> dict[str, Any]:
    """Copy `deploy` to the host, run run_on_board.py there and bring its JSON back (parsed, unchecked)."""
    _run(host.ssh("mkdir", "-p", remote_dir), "mkdir", host)
    target = f"{remote_dir.rstrip('/')}/{deploy.name}"
    _run(host.ssh("rm", "-rf", target), "clean", host)
    copied = _run(host.scp_to(deploy, remote_dir), "copy the deploy folder", host)
    if copied.returncode != 0:
        raise ExplorerError(f"copying {deploy} to {host.target}:{remote_dir} failed: {copied.stderr.strip()}")
    command = (
        f"cd {shlex.quote(target)} && {shlex.quote(python)} run_on_board.py --frames {int(frames)} "
        f"--threads {int(threads)} --out result.json"
    )
    done = _run(host.ssh("sh", "-c", command), "run_on_board.py", host)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ExplorerError(f"run_on_board.py on {host.target} failed (exit {done.returncode}): {last}")
    fetched = _run(host.scp_from(f"{target}/result.json", local_result), "fetch result.json", host)
    if fetched.returncode != 0:
        raise ExplorerError(f"fetching the result from {host.target} failed: {fetched.stderr.strip()}")
    data: dict[str, Any] = json.loads(local_result.read_text())
    return data
