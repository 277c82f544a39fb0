"""Search spaces as data (search_spaces/*.yaml plus inline overrides), and the one place that turns them
into `trial.suggest_*` calls. `design_point` maps the sampled values to a DesignPoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from explorer.datafiles import data_path
from explorer.errors import ConfigError, ExplorerError, Problem, did_you_mean, unknown_keys
from explorer.fileio import load_mapping_file
from explorer.hardware.config import DpuConfig, check_config, field_specs, parse_dpu_config, resolve
from explorer.hardware.database import Board, HwDatabase, load_database

KINDS = ("categorical", "int", "float")
DPU_MULTIPLE = "dpu"  # pruning.multiple: round kept channels to the chosen DPU's output-channel parallelism
SECTIONS = ("dpu", "pruning", "split")
PARAM_KEYS = ("kind", "choices", "low", "high", "step", "log", "when", "per_group", "by_effect")


class TrialLike(Protocol):
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float: ...


@dataclass(frozen=True)
class Param:
    name: str  # section.parameter, e.g. dpu.arch, pruning.threshold_g0
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    when: Mapping[str, Any] = field(default_factory=dict)
    high_is_layers: bool = False  # `high: layers`: the model's layer count, known once the model is loaded
    by_effect: bool = False  # an APoZ threshold offered as one value per distinct effect (`thresholds_by_effect`)


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    fixed: Mapping[str, Mapping[str, Any]]  # section -> fixed values
    prune_groups: int
    files: tuple[Path, ...] = ()
    overridden: frozenset[str] = frozenset()  # the `section.param` names the study's overrides set

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def bind(self, layers: int) -> SearchSpace:
        """The space for a model of `layers` layers: every `high: layers` becomes that count."""
        params = tuple(replace(p, high=float(layers), high_is_layers=False) if p.high_is_layers else p for p in self.params)
        return replace(self, params=params)


@dataclass(frozen=True)
class DesignPoint:
    dpu: DpuConfig
    prune: Mapping[str, float]
    prune_multiple: int
    prune_groups: int
    split: int | None
    cpu_precision: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "dpu": self.dpu.to_dict(),
            "prune": dict(self.prune),
            "prune_multiple": self.prune_multiple,
            "prune_groups": self.prune_groups,
            "split": self.split,
            "cpu_precision": self.cpu_precision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DesignPoint:
        """The inverse of `to_dict` (a trial's stored design point)."""
        return cls(
            DpuConfig(**data["dpu"]),
            dict(data["prune"]),
            int(data["prune_multiple"]),
            int(data["prune_groups"]),
            data["split"],
            str(data["cpu_precision"]),
        )


def resolve_space_file(name: str, base: Path) -> Path | None:
    for candidate in (base / name, Path(name)):
        if candidate.is_file():
            return candidate.resolve()
    try:
        bundled = data_path("search_spaces", name)
    except ExplorerError:
        return None
    return bundled if bundled.is_file() else None


def _param(name: str, spec: Any, problems: list[Problem], where: str, layers: int | None) -> Param | None:
    if not isinstance(spec, Mapping):
        problems.append(Problem(where, "expected a mapping with kind and choices or low/high"))
        return None
    problems.extend(unknown_keys(spec, PARAM_KEYS, where))
    kind = spec.get("kind", "categorical" if "choices" in spec else None)
    if kind not in KINDS:
        problems.append(Problem(f"{where}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}"))
        return None
    by_effect = spec.get("by_effect", False)
    if not isinstance(by_effect, bool) or (by_effect and not name.startswith("pruning.threshold")):
        problems.append(
            Problem(f"{where}.by_effect", f"expected true or false, on a pruning threshold only; got {by_effect!r} on {name}")
        )
        by_effect = False
    when = spec.get("when") or {}
    if not isinstance(when, Mapping):
        problems.append(Problem(f"{where}.when", "expected a mapping of fact or parameter -> value"))
        when = {}
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            problems.append(Problem(f"{where}.choices", "expected a non-empty list"))
            return None
        return Param(name, kind, tuple(choices), when=dict(when), by_effect=by_effect)
    low, high = spec.get("low"), spec.get("high")
    symbolic = high == "layers"
    if symbolic:
        high = layers if layers is not None else low  # resolved by SearchSpace.bind
    if not isinstance(low, int | float) or not isinstance(high, int | float) or isinstance(low, bool) or low > high:
        problems.append(Problem(where, f"expected numbers low <= high, got low={low!r} high={spec.get('high')!r}"))
        return None
    step = spec.get("step")
    if step is not None and (not isinstance(step, int | float) or step <= 0):
        problems.append(Problem(f"{where}.step", f"expected a positive number, got {step!r}"))
        step = None
    log, pending = bool(spec.get("log", False)), symbolic and layers is None
    return Param(name, kind, (), float(low), float(high), float(step) if step else None, log, dict(when), pending, by_effect)


def thresholds_by_effect(space: SearchSpace, apoz: Mapping[str, Sequence[Sequence[float]]]) -> SearchSpace:
    """The space with each `by_effect` APoZ threshold offered as one value per distinct effect: thresholds that
    prune the same channels are one choice for the sampler (and the cache), not many (issue #17).

    `apoz`: per layer group, the APoZ of each channel of each of its prunable clusters. A threshold t prunes
    the channels whose APoZ is at least t (compress/prune.py `choose_channels`), so two thresholds prune alike,
    at every channel multiple and with or without abstaining, exactly when no channel's APoZ lies between them.
    Each run of the parameter's values with one effect becomes its highest value (the mildest label of it)."""
    params = []
    for p in space.params:
        if not p.by_effect:
            params.append(p)
            continue
        if p.kind == "float" and not p.step:
            params.append(p)  # a continuous range has no runs of values to merge
            continue
        values = [float(v) for v in grid_values(p)]
        group = p.name.removeprefix("pruning.threshold").lstrip("_")  # "g2"; "" for one threshold for every group
        clusters = [c for g, cs in apoz.items() if group in (g, "") for c in cs]
        channels = [float(a) for cluster in clusters for a in cluster]
        choices: list[float] = []
        last: int | None = None
        for value in sorted(values, reverse=True):  # from the mildest: a new effect starts where a channel is cut
            effect = sum(a >= value for a in channels)
            if effect != last:
                choices.append(value)
                last = effect
        params.append(replace(p, kind="categorical", choices=tuple(sorted(choices)), low=0.0, high=0.0, step=None))
    return replace(space, params=tuple(params))


def load_space(
    files: Sequence[Path], overrides: Mapping[str, Any], layers: int | None = None, source: str = "search space"
) -> SearchSpace:
    """Parameters of the given space files with `overrides` (`section.param: {spec changes}` or a fixed value,
    `pruning.groups: N`). `high: layers` stands for the model's layer count: given, or kept for `bind`."""
    problems: list[Problem] = []
    specs: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    fixed: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    groups = 4
    for file in files:
        raw = load_mapping_file(file)
        if not isinstance(raw, Mapping):
            problems.append(Problem(str(file), "expected a mapping"))
            continue
        section = raw.get("name")
        if section not in SECTIONS:
            problems.append(Problem(f"{file}:name", f"expected one of {', '.join(SECTIONS)}, got {section!r}"))
            continue
        for key in raw:
            if key not in ("name", "family", "fixed", "parameters", "groups"):
                problems.append(Problem(f"{file}:{key}", "unknown key"))
        if "groups" in raw:
            groups = int(raw["groups"])
        fixed[section].update(raw.get("fixed") or {})
        for pname, spec in (raw.get("parameters") or {}).items():
            specs[f"{section}.{pname}"] = dict(spec) if isinstance(spec, Mapping) else spec
            origin[f"{section}.{pname}"] = f"{file}:parameters.{pname}"
    for key, value in overrides.items():
        where = f"search_space.overrides.{key}"
        if key == "pruning.groups":
            if not isinstance(value, int) or value < 1:
                problems.append(Problem(where, "expected a positive integer"))
            else:
                groups = value
            continue
        section, _, pname = key.partition(".")
        if section not in SECTIONS or not pname:
            problems.append(Problem(where, f"expected SECTION.PARAMETER with SECTION one of {', '.join(SECTIONS)}"))
            continue
        if isinstance(value, Mapping):
            if key not in specs:
                problems.append(Problem(where, "no such parameter to change" + did_you_mean(key, specs)))
                continue
            base = specs[key] if isinstance(specs[key], dict) else {}
            if "choices" in value:
                base = {k: v for k, v in base.items() if k not in ("low", "high", "step")} | {"kind": "categorical"}
            specs[key] = {**base, **value}
        else:
            specs.pop(key, None)  # a plain value fixes the parameter
            fixed[section][pname] = value
    params: list[Param] = []
    for name, spec in specs.items():
        where = origin.get(name, f"search_space.overrides.{name}")
        per_group = isinstance(spec, Mapping) and spec.get("per_group")
        if per_group:
            for g in range(groups):
                param = _param(f"{name}_g{g}", spec, problems, where, layers)
                if param:
                    params.append(param)
        else:
            param = _param(name, spec, problems, where, layers)
            if param:
                params.append(param)
    if problems:
        raise ConfigError(source, problems)
    return SearchSpace(tuple(params), fixed, groups, tuple(files), frozenset(overrides))


PRECISIONS = ("fp32", "int8")


def param_values(param: Param, ends: bool = False) -> list[Any]:
    """The values a parameter can take (a continuous range, or any range with `ends`: its two ends)."""
    if param.kind == "categorical":
        return list(param.choices)
    if param.kind == "int" and not ends:
        step = int(param.step or 1)
        return list(range(int(param.low), int(param.high) + 1, step))
    if param.kind == "int":
        return sorted({int(param.low), int(param.high)})
    return [param.low, param.high]


def grid_values(param: Param) -> list[Any]:
    """`param_values`, with a stepped float range enumerated on its steps (a continuous range: its two ends)."""
    if param.kind == "float" and param.step:
        count = round((param.high - param.low) / param.step) + 1
        return [round(param.low + i * param.step, 10) for i in range(count)]
    return param_values(param)


def check_space(space: SearchSpace, board: Board, layers: int | None, db: HwDatabase, facts: Mapping[str, Any]) -> list[Problem]:
    """Every value of every parameter (and every fixed value) legal on `board`; one problem per bad value.
    A parameter that the board's facts switch off (`when: {device_has_uram: true}`) is not checked; the
    split range is checked once the model's layer count is known (`layers`)."""
    overrides = space.overridden
    problems: list[Problem] = []
    specs = field_specs(db)
    fixed_dpu = {k: v for k, v in space.fixed.get("dpu", {}).items() if k != "uram_share"}  # uram_share: an encoding
    try:
        base = parse_dpu_config(fixed_dpu, board, source="search space", db=db)
    except ConfigError as exc:
        return [Problem(f"search_space: dpu fixed {p.path}", p.message) for p in exc.problems]
    base_rules = {v.rule for v in check_config(base, board.device, db)}
    plain_rules = {v.rule for v in check_config(parse_dpu_config({}, board, db=db), board.device, db)}
    for key, value in fixed_dpu.items():
        where = f"search_space.overrides.dpu.{key}" if f"dpu.{key}" in overrides else f"search_space: dpu fixed {key}"
        if key in specs:
            alone = parse_dpu_config({key: value}, board, source="search space", db=db)
            for violation in check_config(alone, board.device, db):
                if violation.rule not in plain_rules:
                    problems.append(Problem(where, f"{value!r} is illegal on {board.name}: {violation}"))
    for param in space.params:
        if any(key in facts and facts[key] != wanted for key, wanted in param.when.items()):
            continue
        section, _, name = param.name.partition(".")
        origin = param.name if param.name in overrides else param.name.rsplit("_g", 1)[0]
        where = (
            f"search_space.overrides.{origin}"
            if origin in overrides
            else f"search_space (file {', '.join(f.name for f in space.files)}): {param.name}"
        )
        if section == "dpu" and name == "uram_share":
            bad = [v for v in param_values(param) if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1]
            if bad:
                problems.append(Problem(where, f"a share of the UltraRAM is a fraction in [0, 1], got {bad}"))
            elif board.device.uram == 0 and any(param_values(param)):
                problems.append(Problem(where, f"{board.device.name} has no UltraRAM"))
            continue
        if section == "dpu":
            if name not in specs:
                problems.append(Problem(where, f"not a DPU configuration field; known: {', '.join(specs)}"))
                continue
            for value in param_values(param, ends=True):
                try:
                    config = parse_dpu_config({**fixed_dpu, name: value}, board, source="search space", db=db)
                except ConfigError as exc:
                    problems.extend(Problem(where, f"{value!r}: {p.message}") for p in exc.problems)
                    continue
                if name == "alu_parallel":
                    continue  # design_point caps it at each architecture's PP
                for violation in check_config(config, board.device, db):
                    if violation.rule not in base_rules:
                        problems.append(Problem(where, f"{value!r} is illegal on {board.name}: {violation}"))
        elif section == "pruning" and name.startswith("threshold"):
            bad = [v for v in param_values(param) if not 0 < float(v) <= 1]
            if bad:
                problems.append(Problem(where, f"an APoZ threshold is a fraction in (0, 1], got {bad}"))
        elif section == "pruning" and name == "multiple":
            bad = [
                v for v in param_values(param) if v != DPU_MULTIPLE and (not isinstance(v, int) or isinstance(v, bool) or v < 1)
            ]
            if bad:
                problems.append(Problem(where, f"the channel multiple is a positive integer or {DPU_MULTIPLE!r}, got {bad}"))
        elif section == "split" and name == "split" and layers is not None:
            bad = [v for v in param_values(param) if not isinstance(v, int | float) or not 0 <= v <= layers]
            if bad:
                problems.append(
                    Problem(where, f"the split index is a layer index in 0..{layers} (the model's layers), got {bad}")
                )
        elif section == "split" and name == "cpu_precision":
            bad = [v for v in param_values(param) if v not in PRECISIONS]
            if bad:
                problems.append(Problem(where, f"the CPU part's precision is fp32 or int8, got {bad}"))
    precision = space.fixed.get("split", {}).get("cpu_precision")
    if precision is not None and precision not in PRECISIONS:
        problems.append(Problem("search_space.overrides.split.cpu_precision", f"fp32 or int8, got {precision!r}"))
    return list(dict.fromkeys(problems))  # a per-group parameter says its problem once


def is_active(param: Param, facts: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    for key, wanted in param.when.items():
        have = facts.get(key, values.get(key, values.get(f"{param.name.split('.')[0]}.{key}")))
        if have != wanted:
            return False
    return True


def suggest(trial: TrialLike, space: SearchSpace, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The only place that calls `trial.suggest_*`: one value per active parameter, in file order."""
    values: dict[str, Any] = {}
    for p in space.params:
        if not is_active(p, facts, values):
            continue
        if p.kind == "categorical":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return values


def board_facts(board: Board) -> dict[str, Any]:
    return {"device_has_uram": board.device.uram > 0, "family": board.family, "board": board.name}


def design_point(
    values: Mapping[str, Any], space: SearchSpace, board: Board, layers: int, db: HwDatabase | None = None
) -> DesignPoint:
    """Map sampled values (and the fixed ones) to a DesignPoint; encodings keep it legal."""
    db = db or load_database()
    sections: dict[str, dict[str, Any]] = {s: dict(space.fixed.get(s, {})) for s in SECTIONS}
    for name, value in values.items():
        section, _, pname = name.partition(".")
        sections[section][pname] = value
    dpu = sections["dpu"]
    share = float(dpu.pop("uram_share", 0.0) or 0.0)
    fields = {k: v for k, v in dpu.items() if k != "uram_per_core"}
    config = parse_dpu_config(fields, board, source="search space", db=db)
    arch = db.ip.architectures[config.arch]
    changes: dict[str, Any] = {}
    if config.alu_parallel > arch.pp:
        changes["alu_parallel"] = arch.pp  # the ALU cannot be wider than the pixel parallelism
    if "uram_per_core" in dpu:
        changes["uram_per_core"] = int(dpu["uram_per_core"])
    elif share > 0 and board.device.uram:
        spec = resolve(config, db)
        limit = min(spec.uram_replaceable_banks, board.device.uram // config.cores // spec.uram_per_bank)
        changes["uram_per_core"] = math.floor(share * limit) * spec.uram_per_bank
    if changes:
        config = DpuConfig(**{**config.to_dict(), **changes})
    pruning = sections["pruning"]
    groups = space.prune_groups
    thresholds = {f"g{g}": float(pruning[f"threshold_g{g}"]) for g in range(groups) if f"threshold_g{g}" in pruning}
    if "threshold" in pruning:
        thresholds = {f"g{g}": float(pruning["threshold"]) for g in range(groups)}
    split_value = sections["split"].get("split")
    split = None if split_value is None or int(split_value) >= layers else int(split_value)
    precision = str(sections["split"].get("cpu_precision", "fp32"))
    if precision not in ("fp32", "int8"):
        raise ExplorerError(f"split.cpu_precision must be fp32 or int8, got {precision!r}")
    multiple = pruning.get("multiple", 4)
    if multiple == DPU_MULTIPLE:  # what the chosen DPU computes at no extra cost: its output-channel parallelism
        multiple = arch.ocp
    return DesignPoint(config, thresholds, int(multiple), groups, split, precision)
