"""Running models in memory-bounded chunks gives the same tensors as running them whole."""

from __future__ import annotations

import numpy as np
import onnx

from explorer.graph.prepare import graph_from_model
from explorer.runtime import run_model, stream_model
from reference.zoo import NetBuilder


def _model() -> tuple[onnx.ModelProto, str]:
    """Two convolutions with a symbolic batch, and the name of the first one's output."""
    b = NetBuilder("two_convs", (1, 3, 16, 16), seed=4)
    y = b.conv("input", 8, k=3)
    z = b.conv(y, 4, k=3)
    graph = graph_from_model(b.build([z]))
    model = graph.model
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return model, graph.layers[0].outputs[0]


def test_chunks_stay_under_the_budget_and_reproduce_the_whole_run() -> None:
    model, inner = _model()
    x = np.random.default_rng(0).standard_normal((10, 3, 16, 16)).astype(np.float32)
    whole = run_model(model, {"input": x}, extra_outputs=[inner])
    per_sample = 4 * (8 * 16 * 16 + 4 * 16 * 16)  # the inner tensor and the output, float32
    chunks = list(stream_model(model, {"input": x}, extra_outputs=[inner], budget=3 * per_sample))
    assert [count for count, _ in chunks] == [3, 3, 3, 1]
    joined = np.concatenate([outputs[inner] for _, outputs in chunks])
    np.testing.assert_array_equal(joined, whole[inner])


def test_a_tiny_budget_still_runs_one_sample_at_a_time() -> None:
    model, inner = _model()
    x = np.zeros((2, 3, 16, 16), dtype=np.float32)
    assert [c for c, _ in stream_model(model, {"input": x}, [inner], budget=1)] == [1, 1]
