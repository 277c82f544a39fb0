from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from explorer.graph.loader import ModelError, load_model, parse_input_shapes, prepare_model
from explorer.graph.prepare import load_graph
from tests.models import tiny_resnet


def _dynamic_model() -> onnx.ModelProto:
    model = tiny_resnet()
    dim = model.graph.input[0].type.tensor_type.shape.dim
    dim[2].Clear()
    dim[2].dim_param = "height"
    dim[3].Clear()
    dim[3].dim_param = "width"
    return model


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such ONNX file"):
        load_model(tmp_path / "missing.onnx")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07 this is not a protobuf \xff\xfe")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_model(path)


def test_dynamic_shapes_need_input_shape(tmp_path: Path) -> None:
    path = tmp_path / "dyn.onnx"
    onnx.save(_dynamic_model(), path)
    with pytest.raises(ModelError, match="--input-shape"):
        load_model(path)
    model = load_model(path, parse_input_shapes(["1x3x64x64"]))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 64, 64]
    graph = load_graph(path, parse_input_shapes(["input=1x3x32x32"]))
    assert graph.shapes["input"] == (1, 3, 32, 32)


def test_input_shape_errors() -> None:
    with pytest.raises(ModelError.__mro__[1], match="expected NAME=1x3x224x224"):
        parse_input_shapes(["1xAx3"])
    with pytest.raises(ModelError.__mro__[1], match="model's inputs are: input"):
        prepare_model(_dynamic_model(), {"image": [1, 3, 32, 32]})


def test_old_opset_is_converted() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "old", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 7
    out = prepare_model(model)
    assert max(o.version for o in out.opset_import if o.domain == "") >= 11


def test_custom_operator_nothing_can_run(tmp_path: Path) -> None:
    model = tiny_resnet()
    node = model.graph.node[0]
    node.domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match="neither the DPU nor onnxruntime"):
        load_graph(path)
