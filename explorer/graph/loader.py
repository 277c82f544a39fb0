"""Load an ONNX model, check it, resolve its input shapes and infer every tensor's shape."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
from onnx import helper, shape_inference, version_converter

from explorer.errors import ExplorerError

MIN_OPSET = 11
TARGET_OPSET = 13


class ModelError(ExplorerError):
    """A model file that cannot be used as it is; the message says what to do."""


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _initializer_names(model: onnx.ModelProto) -> set[str]:
    return {init.name for init in model.graph.initializer}


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs (older exporters also list initializers as inputs)."""
    inits = _initializer_names(model)
    return [i for i in model.graph.input if i.name not in inits]


def tensor_shape(value: onnx.ValueInfoProto) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def parse_input_shapes(specs: Sequence[str]) -> dict[str, list[int]]:
    """`NAME=1x3x224x224` or `1,3,224,224` (for a single-input model) -> {name or "": dims}."""
    out: dict[str, list[int]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=") if "=" in spec else ("", "", spec)
        try:
            shape = [int(x) for x in dims.replace("x", ",").split(",") if x.strip()]
        except ValueError as exc:
            raise ExplorerError(f"--input-shape {spec!r}: expected NAME=1x3x224x224 or 1x3x224x224") from exc
        if not shape or any(d <= 0 for d in shape):
            raise ExplorerError(f"--input-shape {spec!r}: dimensions must be positive integers")
        if len(shape) > 1 and shape[0] != 1:
            raise ExplorerError(
                f"--input-shape {spec!r}: batch {shape[0]}; the estimate is per image (the DPU runs one frame at a "
                "time per core, and threads give the throughput): give batch 1"
            )
        out[name.strip() if sep else ""] = shape
    return out


SHAPE_FLAG = "--input-shape"  # how a command names the input shapes; a study says `model.input_shape`


def fix_input_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]], option: str = SHAPE_FLAG) -> onnx.ModelProto:
    """A copy of `model` whose inputs have the given static shapes; dynamic batch dims become 1.

    `option` is how the user gave the shapes (a flag or a study key), for the messages."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inputs = graph_inputs(out)
    names = [i.name for i in inputs]
    if "" in shapes and len(inputs) != 1:
        raise ExplorerError(f"the model has {len(inputs)} inputs ({', '.join(names)}); give {option} per input name")
    for key in shapes:
        if key and key not in names:
            raise ExplorerError(f"{option} names {key!r}, but the model's inputs are: {', '.join(names)}")
    for value in inputs:
        wanted = shapes.get(value.name, shapes.get("") if len(inputs) == 1 else None)
        dims = value.type.tensor_type.shape.dim
        if wanted is not None:
            if len(dims) and len(dims) != len(wanted):
                raise ExplorerError(f"input {value.name!r} has rank {len(dims)}, but {option} gives {len(wanted)} dims")
            fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
            clash = [have for have, want in zip(fixed, wanted, strict=False) if have and have != want]
            if clash:
                shown = "[" + ", ".join(str(d) if d else "N" for d in fixed) + "]"
                raise ExplorerError(
                    f"input {value.name!r} has the static shape {shown}, but {option} gives {list(wanted)}; "
                    f"drop {option} or give the model's own shape"
                )
            del dims[:]
            for d in wanted:
                dims.add().dim_value = int(d)
        elif len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1  # a symbolic batch dimension: one image at a time
    return out


def _clear_intermediate_shapes(model: onnx.ModelProto) -> None:
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")


_LIGHT_LIMIT = 256  # initializers with more elements than this are replaced by typed inputs


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without the data of its large initializers (they become typed graph inputs).

    Checking and shape inference need only shapes, and serialising hundreds of MB of weights
    dominated their cost; small initializers (Reshape shapes, Clip bounds) stay for data propagation.
    """
    big = [i for i in model.graph.initializer if math.prod(i.dims) > _LIGHT_LIMIT]
    big_names = {i.name for i in big}
    inputs = [i for i in model.graph.input if i.name not in big_names]
    inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in big]
    graph = helper.make_graph(
        list(model.graph.node),
        model.graph.name,
        inputs,
        list(model.graph.output),
        initializer=[i for i in model.graph.initializer if i.name not in big_names],
        value_info=list(model.graph.value_info),
    )
    light = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    for func in model.functions:
        light.functions.add().CopyFrom(func)
    return light


def infer_shapes_light(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with every tensor's shape inferred (strict), computed on its light copy."""
    light = light_copy(model)
    del light.graph.value_info[:]
    inferred = shape_inference.infer_shapes(light, check_type=True, strict_mode=True, data_prop=True)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    out.graph.value_info.extend(inferred.graph.value_info)
    by_name = {o.name: o for o in inferred.graph.output}
    for o in out.graph.output:
        o.type.CopyFrom(by_name[o.name].type)
    return out


def load_model(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None) -> onnx.ModelProto:
    """Read, check, upgrade to opset >= 11 if older, fix input shapes and infer all shapes.

    Every failure is a ModelError naming the file and what the user can do.
    """
    return prepare_model(read_model(path), input_shapes, source=str(path))


def read_model(path: str | Path) -> onnx.ModelProto:
    """The ONNX file as it is; a ModelError naming the file when it is missing, unreadable or truncated."""
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"{file}: no such ONNX file")
    try:
        model = onnx.load(str(file))
    except Exception as exc:  # protobuf raises DecodeError, onnx may raise others
        raise ModelError(f"{file}: not a readable ONNX model ({type(exc).__name__}: {exc}); re-export it") from exc
    if not model.graph.node:
        raise ModelError(f"{file}: not a readable ONNX model (the graph has no nodes: empty or truncated); re-export it")
    return model


def prepare_model(
    model: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    source: str = "model",
    option: str = SHAPE_FLAG,
) -> onnx.ModelProto:
    if not model.graph.node:
        raise ModelError(f"{source}: the graph has no nodes")
    opset = default_opset(model)
    if opset < MIN_OPSET:
        try:
            model = version_converter.convert_version(model, TARGET_OPSET)
        except Exception as exc:
            raise ModelError(
                f"{source}: opset {opset} is older than {MIN_OPSET} and could not be converted ({exc}); "
                f"re-export with opset {TARGET_OPSET} or later"
            ) from exc
    try:
        onnx.checker.check_model(light_copy(model))
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{source}: invalid ONNX model: {first}") from exc
    model = fix_input_shapes(model, input_shapes or {}, option)
    _clear_intermediate_shapes(model)
    try:
        model = infer_shapes_light(model)
    except Exception as exc:
        raise ModelError(f"{source}: shape inference failed: {str(exc).strip().splitlines()[0]}") from exc
    unresolved = [
        f"{i.name} {tensor_shape(i)}" for i in graph_inputs(model) if any(not isinstance(d, int) for d in tensor_shape(i))
    ]
    if unresolved:
        raise ModelError(
            f"{source}: input shapes are not static ({'; '.join(unresolved)}); give them with "
            + (f"{option} NAME=1x3x224x224" if option == SHAPE_FLAG else f"{option} (e.g. [1, 3, 224, 224])")
        )
    return model


_RUNNABLE_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}


def check_runnable(model: onnx.ModelProto, *, source: str = "model") -> None:
    """Every node must be runnable by the DPU or by onnxruntime on the Arm; name the first that is not."""
    for node in model.graph.node:
        if node.domain not in _RUNNABLE_DOMAINS:
            raise ModelError(
                f"{source}: node {node.name or node.op_type!r} is operator {node.op_type!r} of domain {node.domain!r}: "
                "neither the DPU nor onnxruntime on the Arm can run it; replace it with standard ONNX operators"
            )
