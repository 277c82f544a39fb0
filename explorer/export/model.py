"""The model side of an export: the (pruned) model cut at the design point's split, and a study trial's origin.

`model_parts` returns the layers before the cut (for the Vitis AI quantizer and compiler: it may still
leave nodes it cannot run to the CPU) and the layers after it (for onnxruntime on the Arm cores, in fp32
and, when the design point runs the CPU side in int8, a power-of-two QDQ copy calibrated on the DPU
part's outputs).
"""

from __future__ import annotations

import numpy as np
import onnx

from explorer.compress.context import CPU_INT8_KINDS, CompressionContext, CompressOptions
from explorer.compress.quantize import quantize
from explorer.data.loaders import Dataset
from explorer.dpu.partition import Subgraph, cut_points, subgraph_model
from explorer.errors import ExplorerError
from explorer.export.writer import ModelParts
from explorer.runtime import run_model

CALIBRATION_SAMPLES = 32


def model_parts(compression: CompressionContext, options: CompressOptions, net_name: str) -> ModelParts:
    _, graph, _ = compression.pruned(options)
    n = len(graph.layers)
    split = options.split if options.split is not None and options.split < n else None
    inputs = {name: list(graph.shapes[name]) for name in graph.graph_inputs}
    calib = compression.calibration.head(CALIBRATION_SAMPLES)
    calibration = {name: np.asarray(calib.inputs[name], dtype=np.float32) for name in inputs}
    if split is None:
        whole = subgraph_model(graph, Subgraph(0, "DPU", tuple(range(n)), graph.graph_inputs, graph.graph_outputs))
        return ModelParts(
            net_name, whole, None, None, inputs, list(graph.graph_outputs), list(graph.graph_outputs), None,
            options.cpu_precision, calibration,
        )  # fmt: skip
    cut = cut_points(graph)[split]
    made_before = {t for layer in graph.layers[:split] for t in layer.outputs}
    head_outputs = tuple(t for t in cut.tensors if t in made_before)
    head: onnx.ModelProto | None = None  # split 0: the whole model runs on the Arm CPU, nothing for the DPU
    if head_outputs:
        head = subgraph_model(graph, Subgraph(0, "DPU", tuple(range(split)), graph.graph_inputs, head_outputs))
    elif split:
        raise ExplorerError(f"split {split} leaves the DPU part empty; choose split 0 (all on the CPU) or a later one")
    tail_outputs = tuple(t for t in graph.graph_outputs if t not in made_before)
    tail = subgraph_model(graph, Subgraph(1, "CPU", tuple(range(split, n)), cut.tensors, tail_outputs))
    tail_int8 = None
    if options.cpu_precision == "int8":
        produced = run_model(head, calibration) if head is not None else {}
        feeds = {t: (calibration[t] if t in calibration else produced[t]) for t in cut.tensors}
        nodes = {layer.outputs[0] for layer in graph.layers[split:] if layer.kind in CPU_INT8_KINDS and layer.outputs}
        tail_int8 = quantize(tail, nodes, Dataset(feeds, {}, "dpu part outputs"), options.calibration).model
    return ModelParts(
        net_name, head, tail, tail_int8, inputs, list(cut.tensors), list(graph.graph_outputs), split,
        options.cpu_precision, calibration,
    )  # fmt: skip
