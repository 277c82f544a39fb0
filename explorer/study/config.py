"""study.yaml: one loader that validates everything at once; every problem names its YAML path.

Sections: model, data, calibration_data, evaluator, board, search_space, objectives, constraints,
sampler, n_trials, timeout, seed, storage, output, study_name, estimator, quantization. Paths are relative
to the study file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from explorer.compress import CALIBRATION_METHODS
from explorer.errors import ConfigError, Problem, UnknownNameError, closest
from explorer.evaluators.builtin import BUILTIN, FIDELITY_DIRECTIONS
from explorer.fileio import load_mapping_file
from explorer.hardware.database import RESOURCE_KINDS, load_database
from explorer.hardware.resources import DEFAULT_CEILINGS

SAMPLERS = ("nsga2", "tpe", "random", "grid", "gp")
DIRECTIONS = ("minimize", "maximize")
CALIBRATIONS = CALIBRATION_METHODS
PERF_METRICS = {
    "fps_single": "maximize",
    "fps_multi": "maximize",
    "latency_ms": "minimize",
    "dpu_ms": "minimize",
    "cpu_ms": "minimize",
    "dpu_utilization": "maximize",
    "peak_gops": "maximize",
    "macs": "minimize",
    "params": "minimize",
}
RESOURCE_METRICS = {kind: "minimize" for kind in RESOURCE_KINDS}
TOP_KEYS = (
    "model",
    "data",
    "calibration_data",
    "evaluator",
    "board",
    "search_space",
    "objectives",
    "constraints",
    "sampler",
    "n_trials",
    "timeout",
    "seed",
    "storage",
    "output",
    "study_name",
    "estimator",
    "quantization",
)


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str


@dataclass(frozen=True)
class Bound:
    metric: str
    value: float
    kind: str  # "min" or "max"


@dataclass(frozen=True)
class StudyConfig:
    path: Path
    model: Path
    input_shape: dict[str, list[int]]
    data: str
    calibration_data: str | None
    evaluator: str
    board: str
    space_files: tuple[Path, ...]
    space_overrides: dict[str, Any]
    objectives: tuple[Objective, ...]
    fit: bool
    ceilings: dict[str, float]
    bounds: tuple[Bound, ...]
    sampler: str
    n_trials: int
    timeout: float | None
    seed: int
    storage: str
    output: Path
    study_name: str
    threads: int | None
    pre_ms: float
    post_ms: float
    calibration: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _dims(value: Any) -> TypeGuard[list[int]]:
    return isinstance(value, list) and bool(value) and all(_positive_int(d) for d in value)


def known_metrics(evaluator: str) -> dict[str, str] | None:
    """metric -> direction for a built-in evaluator (None: a user evaluator, whose metrics are unknown)."""
    if evaluator not in BUILTIN:
        return None
    return {**PERF_METRICS, **RESOURCE_METRICS, **BUILTIN[evaluator].directions, **FIDELITY_DIRECTIONS}


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def keys(self, mapping: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = closest(str(key), allowed)
                self.add(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key {key!r}" + (f"; did you mean {hint!r}?" if hint else f"; allowed: {', '.join(allowed)}"),
                )

    def typed(self, value: Any, kinds: tuple[type, ...], path: str, what: str) -> bool:
        if isinstance(value, bool) and bool not in kinds:
            self.add(path, f"expected {what}, got {value!r}")
            return False
        if not isinstance(value, kinds):
            self.add(path, f"expected {what}, got {type(value).__name__} {value!r}")
            return False
        return True


def _mapping(c: _Checker, value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        c.add(path, f"expected a mapping, got {type(value).__name__}")
        return {}
    return dict(value)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study file; raise ConfigError listing every problem with its YAML path."""
    file = Path(path)
    raw = load_mapping_file(file)
    c = _Checker()
    if not isinstance(raw, Mapping):
        raise ConfigError(str(file), [Problem("", "the study file must be a mapping of sections")])
    c.keys(raw, TOP_KEYS, "")
    base = file.parent
    # model
    model_raw = raw.get("model")
    model_path, input_shape = Path(), {}
    if model_raw is None:
        c.add("model", "missing: the ONNX model to explore (path, or {path, input_shape})")
    else:
        if isinstance(model_raw, Mapping):
            c.keys(model_raw, ("path", "input_shape"), "model")
            shape = model_raw.get("input_shape")

            if _dims(shape):
                input_shape = {"": list(shape)}
            elif isinstance(shape, Mapping) and shape and all(_dims(v) for v in shape.values()):
                input_shape = {str(k): list(v) for k, v in shape.items()}
            elif shape is not None:
                c.add(
                    "model.input_shape",
                    f"expected a list of positive integers (e.g. [1, 3, 224, 224]) or {{input name: list}}, got {shape!r}",
                )
            model_raw = model_raw.get("path")
        where = "model" if not isinstance(raw.get("model"), Mapping) else "model.path"
        if isinstance(model_raw, str) or c.typed(model_raw, (str,), where, "a file path"):
            model_path = (base / str(model_raw)).resolve()
            if not model_path.is_file():
                c.add("model", f"no such file: {model_path}")
    # data and evaluator
    data = raw.get("data")
    if data is None:
        c.add("data", "missing: evaluation data (file.npz, a folder, or pose-synth:COUNT:SEED)")
    elif (
        c.typed(data, (str,), "data", "a data spec string") and not data.startswith("pose-synth:") and not (base / data).exists()
    ):
        c.add("data", f"no such file or folder: {(base / data).resolve()}")
    calib = raw.get("calibration_data")
    if (
        calib is not None
        and c.typed(calib, (str,), "calibration_data", "a data spec string")
        and not calib.startswith("pose-synth:")
        and not (base / calib).exists()
    ):
        c.add("calibration_data", f"no such file or folder: {(base / calib).resolve()}")
    evaluator = raw.get("evaluator", "pose")
    if (
        c.typed(evaluator, (str,), "evaluator", "pose, classification or module:function")
        and evaluator not in BUILTIN
        and ":" not in evaluator
    ):
        hint = closest(evaluator, list(BUILTIN))
        c.add(
            "evaluator",
            f"unknown evaluator {evaluator!r}"
            + (f"; did you mean {hint!r}?" if hint else "")
            + "; use pose, classification or module:function",
        )
    # board
    board_name = raw.get("board")
    family = "zynq_ultrascale_plus"
    if board_name is None:
        c.add("board", "missing: the board to explore for (see `explore hw boards`)")
    elif c.typed(board_name, (str,), "board", "a board name"):
        try:
            board = load_database().board(board_name)
            board_name, family = board.name, board.family
        except UnknownNameError as exc:
            c.add("board", str(exc))
    # search space
    space = raw.get("search_space")
    default_dpu = "dpu_zynqmp.yaml" if family == "zynq_ultrascale_plus" else "dpu_zynq7000.yaml"
    files_raw: list[Any] = [default_dpu, "pruning.yaml", "split.yaml"]
    overrides: dict[str, Any] = {}
    if isinstance(space, list):
        files_raw = space
    elif isinstance(space, Mapping):
        c.keys(space, ("files", "overrides"), "search_space")
        files_value = space.get("files", files_raw)
        if isinstance(files_value, list):
            files_raw = files_value
        else:
            c.add("search_space.files", f"expected a list of file names, got {files_value!r} (write [{files_value}])")
        overrides = _mapping(c, space.get("overrides"), "search_space.overrides")
    elif space is not None:
        c.add("search_space", "expected a list of files or {files, overrides}")
    from explorer.study.search_space import resolve_space_file

    space_files = []
    for i, name in enumerate(files_raw):
        if c.typed(name, (str,), f"search_space.files[{i}]", "a file name"):
            resolved = resolve_space_file(name, base)
            if resolved is None:
                c.add(f"search_space.files[{i}]", f"no search space {name!r} next to the study or in search_spaces/")
            else:
                space_files.append(resolved)
    # objectives
    metrics = known_metrics(evaluator if isinstance(evaluator, str) else "pose")
    objectives: list[Objective] = []
    objectives_raw = raw.get("objectives", [{"metric": "fps_multi", "direction": "maximize"}])
    if not isinstance(objectives_raw, list) or not objectives_raw:
        c.add("objectives", "expected a non-empty list of {metric, direction}")
        objectives_raw = []
    for i, item in enumerate(objectives_raw):
        p = f"objectives[{i}]"
        if not isinstance(item, Mapping):
            c.add(p, "expected {metric: NAME, direction: minimize|maximize}")
            continue
        c.keys(item, ("metric", "direction"), p)
        metric, direction = item.get("metric"), item.get("direction")
        if not isinstance(metric, str):
            c.add(f"{p}.metric", "missing or not a string")
            continue
        if metrics is not None and metric not in metrics:
            hint = closest(metric, list(metrics))
            c.add(
                f"{p}.metric",
                f"unknown metric {metric!r}"
                + (f"; did you mean {hint!r}?" if hint else "")
                + f"; known: {', '.join(sorted(metrics))}",
            )
        if direction is None and metrics is not None and metric in metrics:
            direction = metrics[metric]
        if direction not in DIRECTIONS:
            c.add(f"{p}.direction", f"must be minimize or maximize, got {direction!r}")
            continue
        objectives.append(Objective(metric, str(direction)))
    if len({o.metric for o in objectives}) != len(objectives):
        c.add("objectives", "each metric may appear once")
    # constraints
    cons = _mapping(c, raw.get("constraints"), "constraints")
    c.keys(cons, ("fit", "ceilings", "min", "max", "min_fps", "min_accuracy"), "constraints")
    fit = cons.get("fit", True)
    if not isinstance(fit, bool):
        c.add("constraints.fit", "expected true or false")
        fit = True
    ceilings = dict(DEFAULT_CEILINGS)
    for kind, value in _mapping(c, cons.get("ceilings"), "constraints.ceilings").items():
        if kind not in RESOURCE_KINDS:
            hint = closest(str(kind), RESOURCE_KINDS)
            c.add(f"constraints.ceilings.{kind}", "unknown resource" + (f"; did you mean {hint!r}?" if hint else ""))
        elif not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1:
            c.add(f"constraints.ceilings.{kind}", f"expected a fraction in (0, 1], got {value!r}")
        else:
            ceilings[kind] = float(value)
    bounds: list[Bound] = []
    for kind in ("min", "max"):
        for metric, value in _mapping(c, cons.get(kind), f"constraints.{kind}").items():
            if metrics is not None and metric not in metrics:
                c.add(f"constraints.{kind}.{metric}", f"unknown metric {metric!r}")
            elif not isinstance(value, int | float) or isinstance(value, bool):
                c.add(f"constraints.{kind}.{metric}", f"expected a number, got {value!r}")
            else:
                bounds.append(Bound(str(metric), float(value), kind))
    if "min_fps" in cons:
        if isinstance(cons["min_fps"], int | float) and not isinstance(cons["min_fps"], bool) and cons["min_fps"] > 0:
            bounds.append(Bound("fps_multi", float(cons["min_fps"]), "min"))
        else:
            c.add("constraints.min_fps", f"expected a positive number, got {cons['min_fps']!r}")
    if "min_accuracy" in cons:
        acc = _mapping(c, cons["min_accuracy"], "constraints.min_accuracy")
        c.keys(acc, ("metric", "value"), "constraints.min_accuracy")
        metric, value = acc.get("metric"), acc.get("value")
        directions = metrics or {}
        if not isinstance(metric, str) or not isinstance(value, int | float):
            c.add("constraints.min_accuracy", "expected {metric: NAME, value: NUMBER}")
        else:
            # "minimum accuracy" means a bound in the metric's better direction
            bounds.append(Bound(metric, float(value), "max" if directions.get(metric) == "minimize" else "min"))
    # run settings
    sampler = raw.get("sampler", "nsga2")
    if sampler not in SAMPLERS:
        hint = closest(str(sampler), SAMPLERS)
        c.add(
            "sampler",
            f"unknown sampler {sampler!r}" + (f"; did you mean {hint!r}?" if hint else "") + f"; choose {', '.join(SAMPLERS)}",
        )
    n_trials = raw.get("n_trials", 100)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        c.add("n_trials", f"expected a positive integer, got {n_trials!r}")
        n_trials = 1
    timeout = raw.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0):
        c.add("timeout", f"expected seconds (a positive number) or null, got {timeout!r}")
        timeout = None
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        c.add("seed", f"expected an integer, got {seed!r}")
        seed = 0
    study_name = raw.get("study_name", file.stem)
    if not isinstance(study_name, str) or not study_name:
        c.add("study_name", "expected a non-empty string")
        study_name = file.stem
    output_raw = raw.get("output", f"explore-out/{study_name}")
    output = base / str(output_raw) if isinstance(output_raw, str) else base / "explore-out"
    if not isinstance(output_raw, str):
        c.add("output", "expected a folder path")
    storage = raw.get("storage")
    if storage is None:
        storage = f"journal:{(output / 'study.journal').resolve()}"
    elif not isinstance(storage, str) or not (
        storage.startswith(("sqlite:", "postgresql", "mysql", "journal:")) or "://" in storage
    ):
        c.add("storage", f"expected an Optuna storage URL (sqlite:///..., postgresql://...) or journal:PATH, got {storage!r}")
        storage = f"journal:{output / 'study.journal'}"
    elif storage.startswith("journal:") and not storage[8:].strip():
        c.add("storage", "journal: needs a file path, e.g. journal:study.journal")
    elif storage.startswith("journal:"):
        storage = (
            f"journal:{(base / storage[8:]).resolve()}"  # absolute: the lock and the resolved copy must not depend on the cwd
        )
    est = _mapping(c, raw.get("estimator"), "estimator")
    c.keys(est, ("threads", "pre_ms", "post_ms"), "estimator")
    threads = est.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        c.add("estimator.threads", f"expected a positive integer, got {threads!r}")
        threads = None
    pre, post = est.get("pre_ms", 0.0), est.get("post_ms", 0.0)
    for name, value in (("pre_ms", pre), ("post_ms", post)):
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            c.add(f"estimator.{name}", f"expected milliseconds (>= 0), got {value!r}")
    quant = _mapping(c, raw.get("quantization"), "quantization")
    c.keys(quant, ("calibration",), "quantization")
    calibration = quant.get("calibration", "minmax")
    if calibration not in CALIBRATIONS:
        c.add("quantization.calibration", f"expected one of {', '.join(CALIBRATIONS)}, got {calibration!r}")
    if c.problems:
        raise ConfigError(str(file), c.problems)
    return StudyConfig(
        path=file.resolve(),
        model=model_path,
        input_shape=input_shape,
        data=str(data),
        calibration_data=str(calib) if calib else None,
        evaluator=str(evaluator),
        board=str(board_name),
        space_files=tuple(space_files),
        space_overrides=overrides,
        objectives=tuple(objectives),
        fit=bool(fit),
        ceilings=ceilings,
        bounds=tuple(bounds),
        sampler=str(sampler),
        n_trials=int(n_trials),
        timeout=float(timeout) if timeout else None,
        seed=int(seed),
        storage=str(storage),
        output=output.resolve(),
        study_name=str(study_name),
        threads=threads,
        pre_ms=float(pre),
        post_ms=float(post),
        calibration=str(calibration),
        raw=dict(raw),
    )
