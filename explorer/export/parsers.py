"""Pure parsers for what comes back from a build or a board: Vivado's `report_utilization` and
`report_timing_summary` text, and the JSON that deploy/run_on_board.py prints.

The parsers read tables by their column names (Vivado added a `Prohibited` column in 2020.x; 7-series
reports say `Slice LUTs` where UltraScale+ says `CLB LUTs`), and raise ExplorerError naming what is
missing when the text is not such a report.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from explorer.errors import ExplorerError

# Vivado site-type row -> our resource kind. Block RAM Tile counts 36 Kb tiles (a RAMB18 is 0.5).
_SITE_TYPES = {
    "CLB LUTs": "lut",
    "Slice LUTs": "lut",
    "CLB Registers": "ff",
    "Slice Registers": "ff",
    "Block RAM Tile": "bram36",
    "URAM": "uram",
    "DSPs": "dsp",
}
_HEADER_FIELD = re.compile(r"^\|\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class Utilization:
    used: dict[str, float]
    available: dict[str, float]
    device: str = ""
    design_state: str = ""
    tool_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "used": self.used,
            "available": self.available,
            "device": self.device,
            "design_state": self.design_state,
            "tool_version": self.tool_version,
        }


def _number(text: str) -> float | None:
    cleaned = text.strip().rstrip("*").replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def parse_utilization(text: str) -> Utilization:
    """LUT / FF / BRAM36 / URAM / DSP used and available from `report_utilization` text."""
    header: dict[str, str] = {}
    used: dict[str, float] = {}
    available: dict[str, float] = {}
    columns: dict[str, int] | None = None
    for line in text.splitlines():
        match = _HEADER_FIELD.match(line)
        if match and not line.strip().startswith("| Site Type") and "|" not in match.group(2):
            header.setdefault(match.group(1).strip(), match.group(2))
            continue
        if not line.startswith("|"):
            if not line.startswith("+"):
                columns = None if line.strip() else columns
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "Site Type":
            columns = {name: i for i, name in enumerate(cells)}
            continue
        if columns is None or "Used" not in columns:
            continue
        raw = line.split("|")[1]
        if len(raw) - len(raw.lstrip()) > 1:  # indented rows are breakdowns ("  LUT as Logic")
            continue
        kind = _SITE_TYPES.get(cells[0])
        if kind is None or kind in used:
            continue
        value = _number(cells[columns["Used"]])
        if value is None:
            continue
        used[kind] = value
        if "Available" in columns:
            avail = _number(cells[columns["Available"]])
            if avail is not None:
                available[kind] = avail
    if "lut" not in used or "ff" not in used:
        raise ExplorerError(
            "not a Vivado report_utilization text: no 'CLB LUTs'/'Slice LUTs' and 'CLB Registers'/'Slice Registers' rows"
        )
    ultrascale = "CLB LUTs" in text  # 7-series reports have no URAM row
    missing = [k for k in ("bram36", "dsp", *(["uram"] if ultrascale else [])) if k not in used]
    if missing:
        raise ExplorerError(
            f"report_utilization is incomplete: no {', '.join(missing)} row (a report cut short, or still being "
            "written); write it again with report_utilization -file"
        )
    return Utilization(used, available, header.get("Device", ""), header.get("Design State", ""), header.get("Tool Version", ""))


@dataclass(frozen=True)
class ClockTiming:
    period_ns: float
    frequency_mhz: float
    wns_ns: float | None = None  # setup, intra-clock paths
    whs_ns: float | None = None  # hold

    @property
    def fmax_mhz(self) -> float | None:
        """The clock this domain would close at: 1000 / (period - WNS)."""
        if self.wns_ns is None or self.period_ns - self.wns_ns <= 0:
            return None
        return 1000.0 / (self.period_ns - self.wns_ns)


@dataclass(frozen=True)
class TimingSummary:
    wns_ns: float | None
    tns_ns: float | None
    tns_failing_endpoints: int | None
    whs_ns: float | None
    ths_ns: float | None
    ths_failing_endpoints: int | None
    met: bool
    clocks: dict[str, ClockTiming] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wns_ns": self.wns_ns,
            "tns_ns": self.tns_ns,
            "tns_failing_endpoints": self.tns_failing_endpoints,
            "whs_ns": self.whs_ns,
            "ths_ns": self.ths_ns,
            "ths_failing_endpoints": self.ths_failing_endpoints,
            "met": self.met,
            "clocks": {
                name: {
                    "period_ns": c.period_ns,
                    "frequency_mhz": c.frequency_mhz,
                    "wns_ns": c.wns_ns,
                    "whs_ns": c.whs_ns,
                    "fmax_mhz": c.fmax_mhz,
                }
                for name, c in self.clocks.items()
            },
        }

    def dpu_fmax_mhz(self) -> float | None:
        """Highest DPU (1x) clock the routed design would meet: the 1x domain, and half the 2x domain."""
        limits = []
        for name, clock in self.clocks.items():
            fmax = clock.fmax_mhz
            if fmax is None:
                continue
            if "clk_dpu" in name:
                limits.append(fmax)
            elif "clk_dsp" in name:
                limits.append(fmax / 2)
        return min(limits) if limits else None


def _value(token: str) -> float | None:
    if token.upper() == "NA":
        return None
    try:
        return float(token)
    except ValueError:
        return None


def _section(lines: list[str], title: str) -> int | None:
    for i, line in enumerate(lines):
        if line.strip().lstrip("|").strip() == title:
            return i
    return None


def parse_timing_summary(text: str) -> TimingSummary:
    """WNS/TNS/WHS/THS, whether every constraint is met, and each clock's period and slack."""
    lines = text.splitlines()
    start = _section(lines, "Design Timing Summary")
    if start is None:
        raise ExplorerError("not a Vivado report_timing_summary text: no 'Design Timing Summary' section")
    values: list[str] | None = None
    for i in range(start, min(start + 30, len(lines))):
        if "WNS(ns)" in lines[i]:
            for follow in lines[i + 1 : i + 6]:
                tokens = follow.split()
                if tokens and not set(follow.strip()) <= {"-", " "}:
                    values = tokens
                    break
            break
    if values is None or len(values) < 8:
        raise ExplorerError("report_timing_summary: the Design Timing Summary row (WNS, TNS, WHS, THS) is missing")

    def count(token: str) -> int | None:
        number = _value(token)
        return int(number) if number is not None else None

    met = "All user specified timing constraints are met" in text
    clocks: dict[str, tuple[float, float]] = {}
    clock_start = _section(lines, "Clock Summary")
    if clock_start is not None:
        row = re.compile(r"^\s*(\S+)\s+\{[^}]*\}\s+([\d.]+)\s+([\d.]+)\s*$")
        for line in lines[clock_start + 1 :]:
            if line.startswith("----") and clocks:
                break
            match = row.match(line)
            if match:
                clocks[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    slack: dict[str, tuple[float | None, float | None]] = {}
    intra = _section(lines, "Intra Clock Table")
    if intra is not None:
        for line in lines[intra + 1 :]:
            if line.startswith("----") and slack:
                break
            tokens = line.split()
            if len(tokens) >= 6 and tokens[0] in clocks:
                slack[tokens[0]] = (_value(tokens[1]), _value(tokens[5]))
    return TimingSummary(
        wns_ns=_value(values[0]),
        tns_ns=_value(values[1]),
        tns_failing_endpoints=count(values[2]),
        whs_ns=_value(values[4]),
        ths_ns=_value(values[5]),
        ths_failing_endpoints=count(values[6]),
        met=met,
        clocks={name: ClockTiming(period, freq, *slack.get(name, (None, None))) for name, (period, freq) in clocks.items()},
    )


BOARD_RUN_SCHEMA = "dpu-explorer/board-run/1"


def parse_board_run(text: str) -> dict[str, Any]:
    """The JSON of deploy/run_on_board.py, checked: schema, source "board", positive FPS and latency."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExplorerError(f"board result is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("schema") != BOARD_RUN_SCHEMA:
        raise ExplorerError(f"board result: expected schema {BOARD_RUN_SCHEMA!r} (the output of deploy/run_on_board.py)")
    if data.get("source") != "board":
        raise ExplorerError("board result: source must be 'board' (a measurement on the board)")
    problems = []
    for key, positive in (("fps_single", True), ("fps_multi", True), ("dpu_ms", False), ("cpu_ms", False)):
        if not _measured_number(data.get(key), positive):
            problems.append(f"{key} must be a finite number {'> 0' if positive else '>= 0'}, got {data.get(key)!r}")
    latency = data.get("latency_ms")
    if not isinstance(latency, dict) or not _measured_number(latency.get("median"), True):
        problems.append(f"latency_ms must be {{median: a finite number > 0, ...}}, got {latency!r}")
    frames = data.get("frames")
    if frames is not None and (not isinstance(frames, int) or isinstance(frames, bool) or frames < 1):
        problems.append(f"frames must be a positive integer, got {frames!r}")
    for key in ("board", "runtime"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key} must be a string, got {data[key]!r}")
    origin = data.get("origin")
    if origin is not None:
        if not isinstance(origin, dict):
            problems.append(f"origin must be {{study, trial}}, got {origin!r}")
        else:
            if "study" in origin and not isinstance(origin["study"], str | type(None)):
                problems.append(f"origin.study must be a path, got {origin['study']!r}")
            trial = origin.get("trial")
            if trial is not None and not trial_number(trial):
                problems.append(f"origin.trial must be a trial number (an integer >= 0), got {trial!r}")
    if problems:
        raise ExplorerError("board result: " + "; ".join(problems))
    return data


def _measured_number(value: Any, positive: bool) -> bool:
    """A real measurement: a finite int or float (never a bool), > 0 or >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return value > 0 if positive else value >= 0


def trial_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
