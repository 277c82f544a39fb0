from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from explorer.graph.loader import prepare_model
from explorer.graph.passes import fold_batchnorm, fold_constants, infer, normalize, remove_identities
from tests.models import tiny_resnet


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})  # type: ignore[return-value]


def test_batchnorm_folded_and_outputs_unchanged() -> None:
    model = prepare_model(tiny_resnet())
    before = model.SerializeToString()
    folded = normalize(model)
    assert model.SerializeToString() == before  # passes never change their input
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    assert any(n.op_type == "BatchNormalization" for n in model.graph.node)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(run(folded, x)[0], run(model, x)[0], rtol=1e-4, atol=1e-4)


def _reshape_chain_model() -> onnx.ModelProto:
    """input -> Identity -> Shape/Gather/Unsqueeze/Concat -> Reshape (the PyTorch Flatten export)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24])
    nodes = [
        helper.make_node("Identity", ["input"], ["ident"]),
        helper.make_node("Shape", ["ident"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "minus1"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["ident", "newshape"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "chain", [x], [y], inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_constant_folding_and_identity_removal() -> None:
    model = prepare_model(_reshape_chain_model())
    folded = remove_identities(fold_constants(model))
    assert [n.op_type for n in folded.graph.node] == ["Reshape"]
    shape = {i.name: numpy_helper.to_array(i) for i in folded.graph.initializer}[folded.graph.node[0].input[1]]
    assert shape.tolist() == [1, -1]
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    np.testing.assert_array_equal(run(folded, x)[0], x.reshape(1, -1))


def test_identity_feeding_graph_output_is_rewired() -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["input"], ["r"]), helper.make_node("Identity", ["r"], ["out"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    out = remove_identities(model)
    assert [(n.op_type, list(n.output)) for n in out.graph.node] == [("Relu", ["out"])]


def test_fold_batchnorm_skips_shared_conv_output() -> None:
    from reference.zoo import NetBuilder

    b = NetBuilder("shared", (1, 3, 8, 8), seed=4)
    conv = b.conv("input", 4, k=3, act=None)
    model = prepare_model(b.build([b.add(b.batchnorm(conv), conv)]))  # the conv output is also read by the Add
    folded = fold_batchnorm(model)
    assert [n.op_type for n in folded.graph.node] == [n.op_type for n in model.graph.node]  # nothing folded
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(folded, x)[0], run(model, x)[0], rtol=1e-5)
    assert len(fold_batchnorm(prepare_model(tiny_resnet())).graph.node) < len(prepare_model(tiny_resnet()).graph.node)


def _conv_reduce_mean(keepdims: int, axes_as_input: bool) -> onnx.ModelProto:
    """Conv -> ReduceMean over H, W (how torch.onnx's dynamo exporter writes a global average pool)."""
    rng = np.random.default_rng(3)
    weight = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1])]
    inits = [weight]
    if axes_as_input:  # opset 18
        inits.append(numpy_helper.from_array(np.array([-2, -1], dtype=np.int64), "axes"))
        nodes.append(helper.make_node("ReduceMean", ["c", "axes"], ["out"], keepdims=keepdims))
        opset = 18
    else:
        nodes.append(helper.make_node("ReduceMean", ["c"], ["out"], axes=[2, 3], keepdims=keepdims))
        opset = 13
    out_shape = [1, 8, 1, 1] if keepdims else [1, 8]
    graph = helper.make_graph(
        nodes,
        "reduce_mean",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_spatial_reduce_mean_becomes_a_global_pool_exactly() -> None:
    from explorer.dpu.support import place_layers
    from explorer.graph.layers import analyze
    from explorer.hardware.config import DpuConfig, resolve

    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    for keepdims, axes_as_input in ((1, False), (0, False), (1, True)):
        model = prepare_model(_conv_reduce_mean(keepdims, axes_as_input))
        rewritten = normalize(model)
        ops = [n.op_type for n in rewritten.graph.node]
        assert "ReduceMean" not in ops and "GlobalAveragePool" in ops
        np.testing.assert_allclose(run(rewritten, x)[0], run(model, x)[0], rtol=1e-5, atol=1e-6)
        graph = analyze(rewritten)
        pool = next(i for i, layer in enumerate(graph.layers) if layer.kind == "global_avgpool")
        assert place_layers(graph, resolve(DpuConfig()))[pool].device == "DPU"  # as the GlobalAveragePool export is


def test_a_standalone_batchnorm_becomes_a_depthwise_convolution() -> None:
    """Pre-activation blocks (BN -> ReLU -> Conv): the BN follows no convolution, so it cannot be folded."""
    from explorer.dpu.support import place_layers
    from explorer.graph.layers import analyze
    from explorer.hardware.config import DpuConfig, resolve

    rng = np.random.default_rng(5)
    params = [
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bias"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "var"),
        numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("BatchNormalization", ["input", "scale", "bias", "mean", "var"], ["bn"], epsilon=1e-3),
            helper.make_node("Relu", ["bn"], ["r"]),
            helper.make_node("Conv", ["r", "w"], ["out"], pads=[1, 1, 1, 1]),
        ],
        "preact",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 8, 8])],
        params,
    )
    model = prepare_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    rewritten = normalize(model)
    assert [n.op_type for n in rewritten.graph.node] == ["Conv", "Relu", "Conv"]
    x = np.random.default_rng(2).standard_normal((1, 4, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(rewritten, x)[0], run(model, x)[0], rtol=1e-4, atol=1e-4)
    layers = analyze(rewritten)
    assert layers.layers[0].kind == "dwconv"
    assert [p.device for p in place_layers(layers, resolve(DpuConfig()))] == ["DPU", "DPU", "DPU"]
    no_dw = DpuConfig(ip_version="3.4", depthwise=False, elew_mult=False, save_argmax=False)
    placed = place_layers(layers, resolve(no_dw))
    assert placed[0].device == "CPU" and "depthwise convolution is disabled" in placed[0].reason


def test_noop_slices_and_one_way_splits_are_removed() -> None:
    ints = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)  # noqa: E731
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["input"], ["r"]),
            helper.make_node("Slice", ["r", "s0", "e_big", "ax"], ["whole"]),  # 0..INT_MAX on H and W
            helper.make_node("Split", ["whole"], ["one"], axis=1),
            helper.make_node("Slice", ["one", "s0", "e_half", "ax"], ["half"]),  # a real slice stays
            helper.make_node("Relu", ["half"], ["out"]),
        ],
        "slices",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 4, 4])],
        [ints("s0", [0, 0]), ints("e_big", [2**62, 2**62]), ints("e_half", [4, 4]), ints("ax", [2, 3])],
    )
    model = prepare_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    cleaned = normalize(model)
    assert [n.op_type for n in cleaned.graph.node] == ["Relu", "Slice", "Relu"]
    x = np.random.default_rng(4).standard_normal((1, 4, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(cleaned, x)[0], run(model, x)[0])


def test_constant_folding_runs_to_a_fixed_point() -> None:
    """A Split whose sizes come from the shape of a tensor that a computed Reshape makes (as a C2f `chunk`
    exports): its sizes fold only after the Reshape's output shape is inferred in a second round."""
    from explorer.graph.layers import analyze

    ints = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)  # noqa: E731
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["input"], ["s"]),
            helper.make_node("Reshape", ["input", "s"], ["y"]),
            helper.make_node("Shape", ["y"], ["ys"]),
            helper.make_node("Gather", ["ys", "one"], ["c"]),
            helper.make_node("Div", ["c", "two"], ["h"]),
            helper.make_node("Concat", ["h", "h"], ["sizes"], axis=0),
            helper.make_node("Split", ["y", "sizes"], ["a", "b"], axis=1),
            helper.make_node("Add", ["a", "b"], ["out"]),
        ],
        "chunk",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 4, 4])],
        [ints("one", [1]), ints("two", [2])],
    )
    model = prepare_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    once = infer(fold_constants(model))
    assert "Shape" in [n.op_type for n in once.graph.node]  # one round leaves the second Shape unfolded
    folded = normalize(model)
    assert [n.op_type for n in folded.graph.node] == ["Reshape", "Slice", "Slice", "Add"]  # the Split as Slices
    assert [layer.kind for layer in analyze(folded).layers][-1] == "add"
    x = np.random.default_rng(6).standard_normal((1, 8, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(run(folded, x)[0], run(model, x)[0])


def test_a_qdq_model_is_placed_as_its_float_graph(tmp_path: Path) -> None:
    """The project's own int8 output (QDQ pairs on every activation, int8 weights) gets the float model's
    partition: one DPU subgraph, not one island per QuantizeLinear/DequantizeLinear."""
    from explorer.compress.quantize import quantize
    from explorer.data.loaders import Dataset
    from explorer.dpu.partition import partition
    from explorer.dpu.support import place_layers
    from explorer.graph.prepare import graph_from_model, load_graph
    from explorer.hardware.config import DpuConfig, resolve

    float_graph = graph_from_model(tiny_resnet())
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    nodes = {layer.outputs[0] for layer in float_graph.layers}
    qdq = quantize(float_graph.model, nodes, Dataset({"input": x}, {}, "rand", "r"), "minmax").model
    assert sum(n.op_type == "QuantizeLinear" for n in qdq.graph.node) > 5
    onnx.save(qdq, str(tmp_path / "int8.onnx"))
    spec = resolve(DpuConfig())
    placed = load_graph(tmp_path / "int8.onnx")
    assert [layer.kind for layer in placed.layers] == [layer.kind for layer in float_graph.layers]
    subgraphs = partition(placed, place_layers(placed, spec)).subgraphs
    assert len([s for s in subgraphs if s.device == "DPU"]) == 1


def test_a_pass_with_nothing_to_rewrite_returns_its_input() -> None:
    """The deployment-flow passes copy the model (weights included) only when they change something."""
    from explorer.graph.passes import batchnorm_to_depthwise, noops_to_identity, reduce_mean_to_global_pool

    model = normalize(prepare_model(tiny_resnet()))  # no ReduceMean, Slice, Split or BatchNormalization left
    for rewrite in (reduce_mean_to_global_pool, noops_to_identity, batchnorm_to_depthwise):
        assert rewrite(model) is model


def _silu_net(opset: int) -> onnx.ModelProto:
    """conv -> SiLU (x * sigmoid(x)) -> a lone Sigmoid: what a PyTorch SiLU and an SE gate export to."""
    weight = numpy_helper.from_array(np.random.default_rng(3).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c"], ["s"]),
            helper.make_node("Mul", ["c", "s"], ["silu"]),
            helper.make_node("Sigmoid", ["silu"], ["out"]),
        ],
        "silu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])],
        [weight],
    )
    return prepare_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def test_hard_activations_are_an_explicit_conversion() -> None:
    """Sigmoid -> HardSigmoid(1/6, 1/2), and x * HardSigmoid(x) -> HardSwish (opset 14 on): what the vendor
    quantizer's ConvertSigmoidToHardSigmoid gives, and what the DPU runs on IP 4.x. It changes the numbers."""
    from explorer.graph.passes import hard_activations

    model = _silu_net(14)
    hard = hard_activations(model)
    assert [n.op_type for n in hard.graph.node] == ["Conv", "HardSwish", "HardSigmoid"]
    x = np.random.default_rng(4).standard_normal((1, 3, 8, 8)).astype(np.float32) * 4
    from explorer.runtime import run_model

    c = run_model(model, {"input": x}, ["c"])["c"]
    hswish = c * np.clip(c / 6 + 0.5, 0, 1)
    np.testing.assert_allclose(run(hard, x)[0], np.clip(hswish / 6 + 0.5, 0, 1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(run(model, x)[0], run(hard, x)[0], atol=1e-3)  # not exact: never silent
    older = hard_activations(_silu_net(13))  # no HardSwish before opset 14: HardSigmoid and Mul stay
    assert [n.op_type for n in older.graph.node] == ["Conv", "HardSigmoid", "Mul", "HardSigmoid"]
    relu_only = tiny_resnet()
    assert hard_activations(relu_only) is relu_only  # nothing to convert: the input itself


def test_splits_become_slices_exactly() -> None:
    """Quark's ConvertSplitToSlice: sizes as input (opset 13), as attribute (opset 11) or equal parts (opset 18)."""
    from explorer.graph.passes import split_to_slices

    def split_net(opset: int) -> onnx.ModelProto:
        extra: dict[str, object] = {}
        inputs, inits = ["input"], []
        if opset == 11:
            extra["split"] = [2, 6]
        elif opset == 13:
            inputs.append("sizes")
            inits.append(numpy_helper.from_array(np.array([2, 6], dtype=np.int64), "sizes"))
        else:
            extra["num_outputs"] = 2  # equal parts: 4 and 4
        graph = helper.make_graph(
            [helper.make_node("Split", inputs, ["a", "b"], axis=1, **extra), helper.make_node("Relu", ["b"], ["c"])],
            "split",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 4, 4])],
            [
                helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4 if opset == 18 else 2, 4, 4]),
                helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4 if opset == 18 else 6, 4, 4]),
            ],
            inits,
        )
        return prepare_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))

    x = np.random.default_rng(8).standard_normal((1, 8, 4, 4)).astype(np.float32)
    for opset in (11, 13, 18):
        model = split_net(opset)
        sliced = infer(split_to_slices(model))
        assert [n.op_type for n in sliced.graph.node] == ["Slice", "Slice", "Relu"], opset
        for got, want in zip(run(sliced, x), run(model, x), strict=True):
            np.testing.assert_array_equal(got, want)


def test_x_times_its_hard_sigmoid_is_a_hard_swish_exactly() -> None:
    """How older exporters write PyTorch's Hardswish; normalisation fuses it (ONNX defines HardSwish so)."""
    from explorer.graph.passes import hard_activations

    unfused = hard_activations(_silu_net(13))  # HardSigmoid + Mul: no HardSwish before opset 14 ...
    unfused.opset_import[0].version = 14  # ... as an exporter writes it at opset 14 all the same
    assert [n.op_type for n in normalize(unfused).graph.node] == ["Conv", "HardSwish", "HardSigmoid"]
    x = np.random.default_rng(9).standard_normal((1, 3, 8, 8)).astype(np.float32) * 4
    np.testing.assert_allclose(run(normalize(unfused), x)[0], run(unfused, x)[0], rtol=1e-6, atol=1e-6)
