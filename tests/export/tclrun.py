"""Run generated Tcl scripts against the stub Vivado commands and read back the design model."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

STUB = Path(__file__).with_name("vivado_stub.tcl")


def tcl_brace(text: str) -> str:
    """A Tcl word for a path we control in tests (no braces or backslashes in it)."""
    assert "{" not in text and "}" not in text and "\\" not in text
    return "{" + text + "}"


@dataclass
class DesignModel:
    project: dict[str, str] = field(default_factory=dict)
    cells: dict[str, str] = field(default_factory=dict)
    props: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    nets: dict[str, list[str]] = field(default_factory=dict)
    intf: list[tuple[str, str]] = field(default_factory=list)
    segments: list[list[str]] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    automation: list[tuple[str, str]] = field(default_factory=list)
    intf_pins: dict[str, str] = field(default_factory=dict)

    def called(self, name: str) -> list[list[str]]:
        return [c for c in self.calls if c[0] == name]


def parse_dump(text: str) -> DesignModel:
    model = DesignModel()
    for line in text.splitlines():
        kind, *rest = json.loads(line)
        if kind == "project":
            model.project[rest[0]] = rest[1]
        elif kind == "cell":
            model.cells[rest[0]] = rest[1]
        elif kind == "prop":
            model.props[rest[0]][rest[1]] = rest[2]
        elif kind == "net":
            model.nets[rest[0]] = rest[1]
        elif kind == "intf":
            model.intf.append((rest[0], rest[1]))
        elif kind == "segment":
            model.segments.append(rest)
        elif kind == "call":
            model.calls.append(rest)
        elif kind == "automation":
            model.automation.append((rest[0], rest[1]))
        elif kind == "intf_pin":
            model.intf_pins[rest[0]] = rest[1]
    return model


def run_tcl(script: str, cwd: Path) -> None:
    """Run a Tcl script: tclsh when installed, else the Tcl inside Python's tkinter."""
    tclsh = shutil.which("tclsh")
    if tclsh:
        path = cwd / "stub_run.tcl"
        path.write_text(script, encoding="utf-8")
        done = subprocess.run([tclsh, str(path)], text=True, capture_output=True, cwd=cwd, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"Tcl failed:\n{done.stdout}\n{done.stderr}")
        return
    import tkinter

    interp = tkinter.Tcl()
    interp.eval(f"cd {tcl_brace(str(cwd))}")
    interp.eval(script)


def run_build(folder: Path, *, have_boards: bool = True, reports: dict[str, Path] | None = None,
              env_repo: str | None = None, entry: str = "build.tcl") -> DesignModel:  # fmt: skip
    """Source the export's entry script with the stubs loaded; return the recorded design."""
    dump = folder / "stub_dump.jsonl"
    lines = [f"source {tcl_brace(str(STUB))}", f"set ::stub::have_boards {int(have_boards)}"]
    if env_repo is not None:
        lines.append(f"set ::env(DPU_IP_REPO) {tcl_brace(env_repo)}")
    for kind, path in (reports or {}).items():
        lines.append(f"set ::stub_reports({kind}) {tcl_brace(str(path))}")
    lines += [f"source {tcl_brace(str(folder / entry))}", f"stub::dump {tcl_brace(str(dump))}"]
    run_tcl("\n".join(lines) + "\n", folder)
    return parse_dump(dump.read_text(encoding="utf-8"))


def parses(path: Path) -> bool:
    """Whether a file is syntactically complete Tcl (`info complete` on the whole text)."""
    script = f"set f [open {tcl_brace(str(path))}]; set t [read $f]; close $f; puts [info complete $t]"
    tclsh = shutil.which("tclsh")
    if tclsh:
        done = subprocess.run([tclsh], input=script, text=True, capture_output=True, timeout=30)
        return done.stdout.strip() == "1"
    import tkinter

    return bool(int(tkinter.Tcl().eval(script.replace("puts ", "return "))))


def reachable(model: DesignModel, start: str) -> set[str]:
    """Interface pins reached from `start` through connections and interconnects (S..→M..)."""
    links: dict[str, set[str]] = defaultdict(set)
    for a, b in model.intf:
        links[a].add(b)
        links[b].add(a)
    seen, todo = {start}, [start]
    while todo:
        pin = todo.pop()
        nxt = set(links[pin])
        cell, name = pin.rsplit("/", 1)
        if model.cells.get(cell, "").split(":")[2:3] == ["axi_interconnect"] and name.startswith("S"):
            nxt |= {p for p in model.intf_pins if p.startswith(cell + "/M")}
        for p in nxt - seen:
            seen.add(p)
            todo.append(p)
    return seen
