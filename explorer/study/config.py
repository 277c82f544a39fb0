"""study.yaml: one loader that validates everything at once; every problem names its YAML path.

Sections: model, data, calibration_data, evaluator, board, search_space, objectives, constraints,
sampler, hardware_search, n_trials, timeout, seed, storage, output, study_name, estimator, quantization,
measure. Paths are relative to the study file. Each section has its own parser returning a frozen
dataclass; `load_study` runs them all and raises one ConfigError listing every problem. The search space
is parsed here too, and checked against the board's rules (`search_space.check_space`), so `explore
validate` reports a bad space before it loads the model; `high: layers` stays symbolic until the model
is known (`SearchSpace.bind`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from explorer.compress import CALIBRATION_METHODS
from explorer.compress.finetune import DEFAULT_STEPS, FinetuneHook, resolve_spec
from explorer.errors import ConfigError, ExplorerError, Problem, UnknownNameError, did_you_mean, unknown_keys
from explorer.evaluators.builtin import BUILTIN, FIDELITY_DIRECTIONS
from explorer.fileio import load_mapping_file
from explorer.hardware.database import RESOURCE_KINDS, Board, load_database
from explorer.hardware.resources import DEFAULT_CEILINGS
from explorer.hooks import hook_file
from explorer.perf import RUNTIMES
from explorer.study.search_space import SearchSpace, board_facts, check_space, load_space, resolve_space_file

SAMPLERS = ("nsga2", "tpe", "random", "grid", "gp")
HARDWARE_SEARCH = ("complete", "sample")  # study/completion.py: complete each model variant's DPU side, or sample it
DIRECTIONS = ("minimize", "maximize")
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
    "dpu_subgraphs": "minimize",  # each is a runner call with its own host time; DPU-PYNQ runs exactly one
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
    "hardware_search",
    "n_trials",
    "timeout",
    "seed",
    "storage",
    "output",
    "study_name",
    "heartbeat_interval",
    "grace_period",
    "max_retry",
    "cache",
    "estimator",
    "quantization",
    "pruning",
    "finetune",
    "measure",
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
class ModelSection:
    path: Path
    input_shape: Mapping[str, tuple[int, ...]]  # per input name; "" for the single input


@dataclass(frozen=True)
class DataSection:
    evaluation: str  # data spec: file.npz, a folder, or pose-synth:COUNT:SEED
    calibration: str | None  # data spec of the calibration (and APoZ) data; None: the first 100 of `evaluation`
    evaluator: str  # pose, classification, module:function or file.py:function


@dataclass(frozen=True)
class ConstraintsSection:
    fit: bool  # the design must fit the device under the ceilings
    ceilings: Mapping[str, float]
    bounds: tuple[Bound, ...]


@dataclass(frozen=True)
class RunSection:
    sampler: str
    n_trials: int
    timeout: float | None
    seed: int
    hardware_search: str = "complete"  # HARDWARE_SEARCH


@dataclass(frozen=True)
class StoreSection:
    url: str  # an Optuna storage URL, or journal:PATH (absolute)
    output: Path
    study_name: str
    # database storages (PostgreSQL, MySQL): each running trial's worker beats every heartbeat_interval s; a
    # trial with no beat for grace_period s is failed (its worker died) and retried up to max_retry times
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 3
    # the accuracy cache: OUTPUT/cache (per host) by default, a shared folder when several hosts share one,
    # or None (cache: false) for none
    cache: Path | None = None
    cache_enabled: bool = True

    @property
    def cache_dir(self) -> Path:
        return self.cache or self.output / "cache"


@dataclass(frozen=True)
class EstimatorSection:
    threads: int | None
    pre_ms: float
    post_ms: float
    runtime: str = "vart"  # vart | pynq: DPU-PYNQ runs exactly one DPU subgraph (a constraint of the study)
    calibration: Path | None = None  # a profile of `explore calibrate` for this board; None: the shipped fit


@dataclass(frozen=True)
class QuantizationSection:
    calibration: str  # minmax | percentile | mse
    hard_activations: bool = False  # Sigmoid/SiLU -> HardSigmoid/HardSwish before placement (changes the numbers)


@dataclass(frozen=True)
class PruningSection:
    recovery: str = "reconstruct"  # after pruning: least-squares reconstruction of the consumers, or none
    abstain: bool = False  # leave a layer group whole where pruning would not change its passes on the sampled DPU
    finetune: FinetuneHook | None = None  # `finetune:` the user's fine-tuning after pruning (compress/finetune.py)
    rounds: int = 1  # iterative pruning: rounds of prune, recover, measure the APoZ again
    selection: str = "reconstruction"  # which channels go (APoZ says how many): the refit's least needed, or apoz


@dataclass(frozen=True)
class MeasureSection:
    """`measure:`: run the best design points on a host over SSH while the study runs (explore measure)."""

    host: str
    port: int | None = None
    identity: Path | None = None
    ssh_config: Path | None = None
    remote_dir: str = "dpu-explorer-measure"
    remote_python: str = "python3"
    frames: int = 200
    threads: int = 2
    compile_command: str | None = None
    top: int = 3  # the feasible Pareto-optimal trials measured each time, best first by the first objective
    every: int = 0  # measure after every this many finished trials; 0: once, at the end
    recalibrate: bool = False  # refit a calibration profile from the measurements, and time later trials with it


MEASURE_KEYS = tuple(MeasureSection.__dataclass_fields__)


@dataclass(frozen=True)
class StudyConfig:
    path: Path
    model: ModelSection
    data: DataSection
    board: str
    space: SearchSpace  # unbound: `high: layers` is resolved with the model (SearchSpace.bind)
    objectives: tuple[Objective, ...]
    constraints: ConstraintsSection
    run: RunSection
    store: StoreSection
    estimator: EstimatorSection
    quantization: QuantizationSection
    measure: MeasureSection | None = None
    pruning: PruningSection = PruningSection()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def with_run(self, **changes: Any) -> StudyConfig:
        """A copy with other run settings (n_trials, timeout, ...), as the command-line flags give them."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, **changes))

    def with_output(self, output: Path) -> StudyConfig:
        """A copy that keeps its output, and its journal, in `output`."""
        store = dataclasses.replace(self.store, url=f"journal:{(output / 'study.journal').resolve()}", output=output.resolve())
        return dataclasses.replace(self, store=store)


def known_metrics(evaluator: str) -> dict[str, str] | None:
    """metric -> direction for a built-in evaluator (None: a user evaluator, whose metrics are unknown)."""
    if evaluator not in BUILTIN:
        return None
    return {**PERF_METRICS, **RESOURCE_METRICS, **BUILTIN[evaluator].directions, **FIDELITY_DIRECTIONS}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dims(value: Any) -> TypeGuard[list[int]]:
    return isinstance(value, list) and bool(value) and all(_positive_int(d) for d in value)


class _Checker:
    """Collects problems; each section parser reports into it and returns its best reading of the section."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def keys(self, mapping: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        self.problems.extend(unknown_keys(mapping, allowed, path))

    def typed(self, value: Any, kinds: tuple[type, ...], path: str, what: str) -> bool:
        if isinstance(value, bool) and bool not in kinds:
            self.add(path, f"expected {what}, got {value!r}")
            return False
        if not isinstance(value, kinds):
            self.add(path, f"expected {what}, got {type(value).__name__} {value!r}")
            return False
        return True

    def flag(self, section: Mapping[str, Any], key: str, path: str) -> bool:
        """`section[key]` as true or false (false when absent); anything else is a problem named by its path."""
        value = section.get(key, False)
        if not isinstance(value, bool):
            self.add(f"{path}.{key}", f"expected true or false, got {value!r}")
        return value is True

    def one_of(self, section: Mapping[str, Any], key: str, choices: tuple[str, ...], path: str) -> str:
        """`section[key]` if it is one of `choices` (the first when absent), else a problem and the first."""
        value = section.get(key, choices[0])
        if value not in choices:
            self.add(
                f"{path}.{key}".lstrip("."),
                f"expected one of {', '.join(choices)}, got {value!r}" + did_you_mean(str(value), choices),
            )
            return choices[0]
        return str(value)

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        return dict(value)

    def data_spec(self, value: Any, path: str, base: Path) -> bool:
        if not self.typed(value, (str,), path, "a data spec string"):
            return False
        if not value.startswith("pose-synth:") and not (base / value).exists():
            self.add(path, f"no such file or folder: {(base / value).resolve()}")
            return False
        return True


# -- sections -----------------------------------------------------------------------------------------------
def _model(c: _Checker, raw: Any, base: Path) -> ModelSection:
    if raw is None:
        c.add("model", "missing: the ONNX model to explore (path, or {path, input_shape})")
        return ModelSection(Path(), {})
    input_shape: dict[str, tuple[int, ...]] = {}
    where = "model"
    if isinstance(raw, Mapping):
        c.keys(raw, ("path", "input_shape"), "model")
        shape = raw.get("input_shape")
        if _dims(shape):
            input_shape = {"": tuple(shape)}
        elif isinstance(shape, Mapping) and shape and all(_dims(v) for v in shape.values()):
            input_shape = {str(k): tuple(v) for k, v in shape.items()}
        elif shape is not None:
            c.add(
                "model.input_shape",
                f"expected a list of positive integers (e.g. [1, 3, 224, 224]) or {{input name: list}}, got {shape!r}",
            )
        batched = [dims for dims in input_shape.values() if len(dims) > 1 and dims[0] != 1]
        if batched:
            c.add(
                "model.input_shape",
                f"batch {batched[0][0]}: the study's estimates are per image (the DPU runs one frame at a time per "
                "core); give batch 1",
            )
            input_shape = {}
        raw, where = raw.get("path"), "model.path"
    if not c.typed(raw, (str,), where, "a file path"):
        return ModelSection(Path(), input_shape)
    path = (base / str(raw)).resolve()
    if not path.is_file():
        c.add("model", f"no such file: {path}")
    return ModelSection(path, input_shape)


def _data(c: _Checker, raw: Mapping[str, Any], base: Path) -> DataSection:
    evaluation = raw.get("data")
    if evaluation is None:
        c.add("data", "missing: evaluation data (file.npz, a folder, or pose-synth:COUNT:SEED)")
    else:
        c.data_spec(evaluation, "data", base)
    calibration = raw.get("calibration_data")
    if calibration is not None:
        c.data_spec(calibration, "calibration_data", base)
    evaluator = raw.get("evaluator", "pose")
    if (
        c.typed(evaluator, (str,), "evaluator", "pose, classification or module:function")
        and evaluator not in BUILTIN
        and ":" not in evaluator
    ):
        c.add(
            "evaluator",
            f"unknown evaluator {evaluator!r}"
            + did_you_mean(evaluator, BUILTIN)
            + "; use pose, classification or module:function",
        )
    return DataSection(str(evaluation), str(calibration) if calibration else None, str(evaluator))


def _board(c: _Checker, raw: Any) -> Board | None:
    if raw is None:
        c.add("board", "missing: the board to explore for (see `explore hw boards`)")
    elif c.typed(raw, (str,), "board", "a board name"):
        try:
            return load_database().board(raw)
        except UnknownNameError as exc:
            c.add("board", str(exc))
    return None


def _space(c: _Checker, raw: Any, base: Path, board: Board | None) -> SearchSpace | None:
    family = board.family if board else "zynq_ultrascale_plus"
    default_dpu = "dpu_zynqmp.yaml" if family == "zynq_ultrascale_plus" else "dpu_zynq7000.yaml"
    files_raw: list[Any] = [default_dpu, "pruning.yaml", "split.yaml"]
    overrides: dict[str, Any] = {}
    if isinstance(raw, list):
        files_raw = raw
    elif isinstance(raw, Mapping):
        c.keys(raw, ("files", "overrides"), "search_space")
        files_value = raw.get("files", files_raw)
        if isinstance(files_value, list):
            files_raw = files_value
        else:
            c.add("search_space.files", f"expected a list of file names, got {files_value!r} (write [{files_value}])")
        overrides = c.mapping(raw.get("overrides"), "search_space.overrides")
    elif raw is not None:
        c.add("search_space", "expected a list of files or {files, overrides}")
    files = []
    for i, name in enumerate(files_raw):
        if c.typed(name, (str,), f"search_space.files[{i}]", "a file name"):
            found = resolve_space_file(name, base)
            if found is None:
                c.add(f"search_space.files[{i}]", f"no search space {name!r} next to the study or in search_spaces/")
            else:
                files.append(found)
    if len(files) != len(files_raw):
        return None
    try:
        space = load_space(files, overrides)
    except ConfigError as exc:
        c.problems.extend(exc.problems)
        return None
    if board is not None:
        c.problems.extend(check_space(space, board, None, load_database(), board_facts(board)))
    return space


def _objectives(c: _Checker, raw: Any, metrics: dict[str, str] | None) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        c.add("objectives", "expected a non-empty list of {metric, direction}")
        return ()
    out: list[Objective] = []
    for i, item in enumerate(raw):
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
            c.add(
                f"{p}.metric",
                f"unknown metric {metric!r}" + did_you_mean(metric, metrics) + f"; known: {', '.join(sorted(metrics))}",
            )
        if direction is None and metrics is not None and metric in metrics:
            direction = metrics[metric]
        if direction not in DIRECTIONS:
            c.add(f"{p}.direction", f"must be minimize or maximize, got {direction!r}")
            continue
        out.append(Objective(metric, str(direction)))
    if len({o.metric for o in out}) != len(out):
        c.add("objectives", "each metric may appear once")
    return tuple(out)


def _constraints(c: _Checker, raw: Any, metrics: dict[str, str] | None) -> ConstraintsSection:
    cons = c.mapping(raw, "constraints")
    c.keys(cons, ("fit", "ceilings", "min", "max", "min_fps", "min_accuracy"), "constraints")
    fit = cons.get("fit", True)
    if not isinstance(fit, bool):
        c.add("constraints.fit", "expected true or false")
        fit = True
    ceilings = dict(DEFAULT_CEILINGS)
    for kind, value in c.mapping(cons.get("ceilings"), "constraints.ceilings").items():
        if kind not in RESOURCE_KINDS:
            c.add(f"constraints.ceilings.{kind}", "unknown resource" + did_you_mean(str(kind), RESOURCE_KINDS))
        elif not _number(value) or not 0 < value <= 1:
            c.add(f"constraints.ceilings.{kind}", f"expected a fraction in (0, 1], got {value!r}")
        else:
            ceilings[kind] = float(value)
    bounds: list[Bound] = []
    for kind in ("min", "max"):
        for metric, value in c.mapping(cons.get(kind), f"constraints.{kind}").items():
            if metrics is not None and metric not in metrics:
                c.add(f"constraints.{kind}.{metric}", f"unknown metric {metric!r}")
            elif not _number(value):
                c.add(f"constraints.{kind}.{metric}", f"expected a number, got {value!r}")
            else:
                bounds.append(Bound(str(metric), float(value), kind))
    if "min_fps" in cons:
        if _number(cons["min_fps"]) and cons["min_fps"] > 0:
            bounds.append(Bound("fps_multi", float(cons["min_fps"]), "min"))
        else:
            c.add("constraints.min_fps", f"expected a positive number, got {cons['min_fps']!r}")
    if "min_accuracy" in cons:
        acc = c.mapping(cons["min_accuracy"], "constraints.min_accuracy")
        c.keys(acc, ("metric", "value"), "constraints.min_accuracy")
        name, floor = acc.get("metric"), acc.get("value")
        if not isinstance(name, str) or not isinstance(floor, int | float) or isinstance(floor, bool):
            c.add("constraints.min_accuracy", "expected {metric: NAME, value: NUMBER}")
        else:
            # "minimum accuracy" means a bound in the metric's better direction
            direction = (metrics or {}).get(name)
            bounds.append(Bound(name, float(floor), "max" if direction == "minimize" else "min"))
    return ConstraintsSection(fit, ceilings, tuple(bounds))


def _run(c: _Checker, raw: Mapping[str, Any]) -> RunSection:
    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        c.add(
            "sampler", f"unknown sampler {sampler!r}" + did_you_mean(str(sampler), SAMPLERS) + f"; choose {', '.join(SAMPLERS)}"
        )
    n_trials = raw.get("n_trials", 100)
    if not _positive_int(n_trials):
        c.add("n_trials", f"expected a positive integer, got {n_trials!r}")
        n_trials = 1
    timeout = raw.get("timeout")
    if timeout is not None and (not _number(timeout) or timeout <= 0):
        c.add("timeout", f"expected seconds (a positive number) or null, got {timeout!r}")
        timeout = None
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        c.add("seed", f"expected an integer, got {seed!r}")
        seed = 0
    hardware_search = c.one_of(raw, "hardware_search", HARDWARE_SEARCH, "")
    return RunSection(str(sampler), int(n_trials), float(timeout) if timeout else None, int(seed), hardware_search)


def _store(c: _Checker, raw: Mapping[str, Any], base: Path, default_name: str) -> StoreSection:
    study_name = raw.get("study_name", default_name)
    if not isinstance(study_name, str) or not study_name:
        c.add("study_name", "expected a non-empty string")
        study_name = default_name
    output_raw = raw.get("output", f"explore-out/{study_name}")
    if not isinstance(output_raw, str):
        c.add("output", "expected a folder path")
        output_raw = "explore-out"
    output = (base / output_raw).resolve()
    default_url = f"journal:{output / 'study.journal'}"
    url = raw.get("storage")
    if url is None:
        url = default_url
    elif not isinstance(url, str) or not (url.startswith(("sqlite:", "postgresql", "mysql", "journal:")) or "://" in url):
        c.add("storage", f"expected an Optuna storage URL (sqlite:///..., postgresql://...) or journal:PATH, got {url!r}")
        url = default_url
    elif url.startswith("journal:") and not url[8:].strip():
        c.add("storage", "journal: needs a file path, e.g. journal:study.journal")
    elif url.startswith("journal:"):
        url = f"journal:{(base / url[8:]).resolve()}"  # absolute: the lock and the resolved copy must not depend on the cwd
    beats = {}
    for key, default in (("heartbeat_interval", 60), ("grace_period", 180), ("max_retry", 3)):
        value = raw.get(key, default)
        least = 0 if key == "max_retry" else 1
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            c.add(key, f"expected an integer >= {least}{' (seconds)' if key != 'max_retry' else ''}, got {value!r}")
            value = default
        beats[key] = value
    if beats["grace_period"] <= beats["heartbeat_interval"]:
        c.add(
            "grace_period",
            f"must be longer than heartbeat_interval ({beats['heartbeat_interval']} s), or a live worker's trial "
            f"would be failed between two beats; got {beats['grace_period']}",
        )
    cache_raw = raw.get("cache")
    cache, enabled = None, cache_raw is not False
    if cache_raw is not None and cache_raw is not False:
        if isinstance(cache_raw, str) and cache_raw.strip():
            cache = (base / cache_raw).resolve()
        else:
            c.add("cache", f"expected a folder for the accuracy cache, or false for none, got {cache_raw!r}")
    return StoreSection(str(url), output, str(study_name), **beats, cache=cache, cache_enabled=enabled)


def _estimator(c: _Checker, raw: Any, base: Path, board: Board | None) -> EstimatorSection:
    est = c.mapping(raw, "estimator")
    c.keys(est, ("threads", "pre_ms", "post_ms", "runtime", "calibration"), "estimator")
    profile = est.get("calibration")
    calibration = None
    if profile is not None and c.typed(profile, (str,), "estimator.calibration", "the path of a calibration profile"):
        from explorer.perf.calibrate import read_profile

        calibration = (base / profile).resolve()
        try:
            loaded = read_profile(calibration)
            if board is not None:
                loaded.params(board)
        except ExplorerError as exc:
            c.add("estimator.calibration", str(exc))
            calibration = None
    runtime = est.get("runtime", "vart")
    if runtime not in RUNTIMES:
        c.add("estimator.runtime", f"expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
        runtime = "vart"
    threads = est.get("threads")
    if threads is not None and not _positive_int(threads):
        c.add("estimator.threads", f"expected a positive integer, got {threads!r}")
        threads = None
    times = {}
    for name in ("pre_ms", "post_ms"):
        value = est.get(name, 0.0)
        if not _number(value) or value < 0:
            c.add(f"estimator.{name}", f"expected milliseconds (>= 0), got {value!r}")
            value = 0.0
        times[name] = float(value)
    return EstimatorSection(threads, times["pre_ms"], times["post_ms"], str(runtime), calibration)


def _quantization(c: _Checker, raw: Any) -> QuantizationSection:
    quant = c.mapping(raw, "quantization")
    c.keys(quant, ("calibration", "hard_activations"), "quantization")
    calibration = quant.get("calibration", "minmax")
    if calibration not in CALIBRATION_METHODS:
        c.add("quantization.calibration", f"expected one of {', '.join(CALIBRATION_METHODS)}, got {calibration!r}")
    return QuantizationSection(str(calibration), c.flag(quant, "hard_activations", "quantization"))


def _pruning(c: _Checker, raw: Any) -> PruningSection:
    from explorer.compress import RECOVERY, SELECTIONS

    section = c.mapping(raw, "pruning")
    c.keys(section, ("recovery", "abstain", "rounds", "selection"), "pruning")
    rounds = section.get("rounds", 1)
    if not _positive_int(rounds):
        c.add("pruning.rounds", f"expected a whole number of pruning rounds of at least 1, got {rounds!r}")
        rounds = 1
    return PruningSection(
        c.one_of(section, "recovery", RECOVERY, "pruning"),
        c.flag(section, "abstain", "pruning"),
        rounds=rounds,
        selection=c.one_of(section, "selection", SELECTIONS, "pruning"),
    )


def _finetune(c: _Checker, raw: Any, base: Path) -> FinetuneHook | None:
    """`finetune: SPEC` or `finetune: {hook: SPEC, steps: N}` (SPEC: module:function or file.py:function)."""
    if raw is None:
        return None
    if not isinstance(raw, str | Mapping):
        c.mapping(raw, "finetune")  # names what is wrong
        return None
    section = {"hook": raw} if isinstance(raw, str) else dict(raw)
    c.keys(section, ("hook", "steps"), "finetune")
    path = "finetune" if isinstance(raw, str) else "finetune.hook"
    spec, steps = section.get("hook"), section.get("steps", DEFAULT_STEPS)
    if not c.typed(spec, (str,), path, "module:function or path/to/file.py:function"):
        return None
    spec = str(spec)
    if ":" not in spec:
        c.add(path, f"expected module:function or path/to/file.py:function, got {spec!r}")
        return None
    file = hook_file(spec, base)
    if file is not None and not file.is_file():
        c.add(path, f"no such file {file}")
        return None
    if not _positive_int(steps):
        c.add("finetune.steps", f"expected a whole number of steps of at least 1, got {steps!r}")
        return None
    return FinetuneHook(resolve_spec(spec, base), int(steps))


def _measure(c: _Checker, raw: Any, base: Path) -> MeasureSection | None:
    if raw is None:
        return None
    section = c.mapping(raw, "measure")
    c.keys(section, MEASURE_KEYS, "measure")
    host = section.get("host")
    if not isinstance(host, str) or not host.strip():
        c.add("measure.host", f"expected [USER@]HOST (or a Host of your SSH configuration), got {host!r}")
        return None
    values: dict[str, Any] = {"host": host.strip()}
    for key, default in (("frames", 200), ("threads", 2), ("top", 3)):
        value = section.get(key, default)
        if not _positive_int(value):
            c.add(f"measure.{key}", f"expected a positive integer, got {value!r}")
        values[key] = value if _positive_int(value) else default
    every = section.get("every", 0)
    if every != "end" and not (isinstance(every, int) and not isinstance(every, bool) and every >= 0):
        c.add("measure.every", f"expected a number of trials (0 or `end`: at the end), got {every!r}")
    values["every"] = every if isinstance(every, int) and not isinstance(every, bool) and every > 0 else 0
    port = section.get("port")
    if port is not None and not (_positive_int(port) and port < 65536):
        c.add("measure.port", f"expected a TCP port, got {port!r}")
    values["port"] = port if _positive_int(port) else None
    for key in ("identity", "ssh_config"):
        value = section.get(key)
        if value is not None and c.typed(value, (str,), f"measure.{key}", "a file path"):
            values[key] = (base / value).resolve()
            if not values[key].is_file():
                c.add(f"measure.{key}", f"no such file: {values[key]}")
    for key in ("remote_dir", "remote_python", "compile_command"):
        value = section.get(key)
        if value is not None and c.typed(value, (str,), f"measure.{key}", "a string"):
            values[key] = value
    values["recalibrate"] = c.flag(section, "recalibrate", "measure")
    return MeasureSection(**values)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study file; raise ConfigError listing every problem with its YAML path."""
    file = Path(path)
    raw = load_mapping_file(file)
    if not isinstance(raw, Mapping):
        raise ConfigError(str(file), [Problem("", "the study file must be a mapping of sections")])
    c = _Checker()
    c.keys(raw, TOP_KEYS, "")
    base = file.parent
    model = _model(c, raw.get("model"), base)
    data = _data(c, raw, base)
    board = _board(c, raw.get("board"))
    space = _space(c, raw.get("search_space"), base, board)
    metrics = known_metrics(data.evaluator if data.evaluator else "pose")
    objectives = _objectives(c, raw.get("objectives", [{"metric": "fps_multi", "direction": "maximize"}]), metrics)
    constraints = _constraints(c, raw.get("constraints"), metrics)
    run = _run(c, raw)
    store = _store(c, raw, base, file.stem)
    estimator = _estimator(c, raw.get("estimator"), base, board)
    quantization = _quantization(c, raw.get("quantization"))
    measure = _measure(c, raw.get("measure"), base)
    pruning = dataclasses.replace(_pruning(c, raw.get("pruning")), finetune=_finetune(c, raw.get("finetune"), base))
    if c.problems or board is None or space is None:
        raise ConfigError(str(file), c.problems)
    return StudyConfig(
        file.resolve(),
        model,
        data,
        board.name,
        space,
        objectives,
        constraints,
        run,
        store,
        estimator,
        quantization,
        measure,
        pruning,
    )
