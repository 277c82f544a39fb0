"""Running ONNX models on this machine with onnxruntime (the CPU execution provider)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The static batch size of the model's first input, or None when it is symbolic."""
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in inits:
            dims = inp.type.tensor_type.shape.dim
            return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None
    return None


def run_model(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], extra_outputs: Sequence[str] = (), batch: int = 64
) -> dict[str, np.ndarray]:
    """All outputs (and `extra_outputs`) of `model` over `feeds`, in batches, concatenated on axis 0.

    A model with a static batch size runs in chunks of exactly that size (the last one padded)."""
    m = with_outputs(model, extra_outputs) if extra_outputs else model
    sess = session(m)
    names = [o.name for o in sess.get_outputs()]  # type: ignore[attr-defined]
    count = len(next(iter(feeds.values())))
    step = fixed_batch(model) or batch
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, count, step):
        chunk = {k: v[start : start + step] for k, v in feeds.items()}
        real = len(next(iter(chunk.values())))
        if real < step and fixed_batch(model):
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], step - real, axis=0)]) for k, v in chunk.items()}
        for name, value in zip(names, sess.run(names, chunk), strict=True):  # type: ignore[attr-defined]
            parts[name].append(value[:real] if value.ndim and value.shape[0] == step else value)
    return {n: np.concatenate(v) if v[0].ndim else v[0] for n, v in parts.items()}
