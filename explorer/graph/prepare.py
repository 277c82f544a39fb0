"""From a model file to its normalised layer table, the way every command needs it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx

from explorer.graph.layers import ModelGraph, analyze
from explorer.graph.loader import SHAPE_FLAG, check_runnable, load_model, prepare_model
from explorer.graph.passes import absorb_qdq, hard_activations, normalize


def graph_from_model(
    model: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    source: str = "model",
    option: str = SHAPE_FLAG,
    hard: bool = False,
) -> ModelGraph:
    """The normalised layer table; `hard` converts Sigmoid/SiLU to HardSigmoid/HardSwish first (changes the numbers)."""
    prepared = prepare_model(model, input_shapes, source=source, option=option)
    check_runnable(prepared, source=source)
    return analyze(normalize(hard_activations(prepared) if hard else prepared))


def load_graph(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None, hard: bool = False) -> ModelGraph:
    """The layer table `explore estimate` places and times: a quantized (QDQ) model as its float graph."""
    model = load_model(path, input_shapes)
    check_runnable(model, source=str(path))
    model = absorb_qdq(model)
    return analyze(normalize(hard_activations(model) if hard else model))
