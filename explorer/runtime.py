"""Running ONNX models on this machine with onnxruntime (the CPU execution provider)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper


def session(model: onnx.ModelProto, threads: int = 0, optimize: bool = True) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def with_outputs(model: onnx.ModelProto, extra: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` that also returns the tensors named in `extra`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    known = {o.name for o in out.graph.output}
    types = {v.name: v for v in [*out.graph.value_info, *out.graph.input]}
    for name in extra:
        if name not in known:
            out.graph.output.append(types[name] if name in types else helper.make_empty_tensor_value_info(name))
    return out


def up_to(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` whose outputs are exactly `tensors`: onnxruntime then runs only what they need."""
    out = with_outputs(model, tensors)
    keep = [o for o in out.graph.output if o.name in set(tensors)]
    del out.graph.output[:]
    out.graph.output.extend(keep)
    return out


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The static batch size of the model's first input, or None when it is symbolic."""
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in inits:
            dims = inp.type.tensor_type.shape.dim
            return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None
    return None


STREAM_BUDGET = 256 * 2**20  # bytes of requested tensors one chunk may hold when streaming


def _sample_bytes(outputs: Sequence[object]) -> int:
    """Bytes one sample of a session's outputs takes (float32; an output of unknown shape counts 1 MB)."""
    total = 0
    for output in outputs:
        dims = list(getattr(output, "shape", None) or [])
        known = dims and all(isinstance(d, int) for d in dims[1:])
        total += 4 * int(np.prod(dims[1:])) if known else 2**20
    return max(1, total)


def stream_model(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    extra_outputs: Sequence[str] = (),
    batch: int = 64,
    budget: int = STREAM_BUDGET,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(sample count, outputs) chunk by chunk: all outputs (and `extra_outputs`) of `model` over `feeds`.

    A chunk holds at most `batch` samples and, with many or large extra outputs, fewer: as many as keep
    the requested tensors under `budget` bytes. A model with a static batch size runs in chunks of
    exactly that size (the last one padded, and its padding cut off again)."""
    m = with_outputs(model, extra_outputs) if extra_outputs else model
    sess = session(m)
    outputs = sess.get_outputs()  # type: ignore[attr-defined]
    names = [o.name for o in outputs]
    count = len(next(iter(feeds.values())))
    fixed = fixed_batch(model)
    step = fixed or max(1, min(batch, budget // _sample_bytes(outputs)))
    for start in range(0, count, step):
        chunk = {k: v[start : start + step] for k, v in feeds.items()}
        real = len(next(iter(chunk.values())))
        if real < step and fixed:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], step - real, axis=0)]) for k, v in chunk.items()}
        values = sess.run(names, chunk)  # type: ignore[attr-defined]
        yield real, {n: (v[:real] if v.ndim and v.shape[0] == step else v) for n, v in zip(names, values, strict=True)}


def run_model(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], extra_outputs: Sequence[str] = (), batch: int = 64
) -> dict[str, np.ndarray]:
    """All outputs (and `extra_outputs`) of `model` over `feeds`, in batches, concatenated on axis 0.

    Holds every requested tensor of every sample: for statistics over many intermediate tensors use
    `stream_model`."""
    parts: dict[str, list[np.ndarray]] = {}
    for _, outputs in stream_model(model, feeds, extra_outputs, batch, budget=2**62):
        for name, value in outputs.items():
            parts.setdefault(name, []).append(value)
    return {n: np.concatenate(v) if v[0].ndim else v[0] for n, v in parts.items()}
