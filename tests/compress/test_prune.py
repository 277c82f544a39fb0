"""APoZ pruning: coupled channels found automatically, dead channels removed without changing outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from explorer.compress.channels import build_channel_graph
from explorer.compress.prune import apply_pruning, choose_channels, measure_apoz, parse_thresholds
from explorer.data.loaders import Dataset
from explorer.graph.layers import analyze
from explorer.graph.prepare import graph_from_model
from explorer.runtime import run_model
from reference.zoo import NetBuilder

DEAD = [1, 4, 6]  # channels of the first convolutions that never activate


def _kill_channels(model: onnx.ModelProto, conv_outputs: list[str], channels: list[int]) -> onnx.ModelProto:
    """Zero the weights and give a negative bias to `channels` of the named convolutions: ReLU(.) == 0."""
    producers = {n.output[0]: n for n in model.graph.node}
    inits = {i.name: i for i in model.graph.initializer}
    for out in conv_outputs:
        node = producers[out]
        w, b = numpy_helper.to_array(inits[node.input[1]]).copy(), numpy_helper.to_array(inits[node.input[2]]).copy()
        w[channels] = 0.0
        b[channels] = -1.0
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(w, node.input[1]))
        inits[node.input[2]].CopyFrom(numpy_helper.from_array(b, node.input[2]))
    # a depthwise convolution turns a zero channel into relu(bias): zero that bias so the channel stays dead
    for node in model.graph.node:
        if node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute):
            bias = numpy_helper.to_array(inits[node.input[2]]).copy()
            bias[channels] = 0.0
            inits[node.input[2]].CopyFrom(numpy_helper.from_array(bias, node.input[2]))
    return model


def coupled_model() -> tuple[onnx.ModelProto, list[str]]:
    """Two convolutions joined by Add (coupled), a concatenation, a depthwise conv and a classifier."""
    b = NetBuilder("coupled", (1, 3, 16, 16), seed=5)
    a_pre = b.conv("input", 8, k=3, act=None)
    c_pre = b.conv("input", 8, k=1, act=None)
    a, c = b.act(a_pre, "relu"), b.act(c_pre, "relu")
    s = b.add(a, c)
    d = b.conv(s, 8, k=3)
    cat = b.concat([s, d])
    e = b.dwconv(cat, act="relu")
    out = b.fc(b.flatten(b.global_avgpool(b.conv(e, 12, k=1))), 5)
    return b.build([out]), [a_pre, c_pre]


def data(model: onnx.ModelProto, n: int = 16) -> Dataset:
    x = np.random.default_rng(0).standard_normal((n, 3, 16, 16)).astype(np.float32)
    return Dataset({"input": x}, {}, "random", "r")


def test_coupled_channels_are_one_cluster_and_concat_keeps_offsets() -> None:
    model, _ = coupled_model()
    graph = graph_from_model(model).model
    cg = build_channel_graph(graph)
    clusters = [members for root, members in cg.clusters().items() if cg.cluster_prunable(root)[0]]
    sizes = sorted(len(m) for m in clusters)
    assert 2 in sizes  # the two convolutions feeding the Add are coupled
    cat = next(n for n in graph.graph.node if n.op_type == "Concat")
    assert len(cg.lists[cat.output[0]]) == 16


def test_dead_channels_are_pruned_and_outputs_do_not_change() -> None:
    model, dead_convs = coupled_model()
    model = _kill_channels(model, dead_convs, DEAD)
    normalized = graph_from_model(model).model
    calib = data(normalized)
    report = measure_apoz(normalized, calib, groups=1)
    coupled = next(c for c in report.clusters if len(c.sources) == 2)
    assert np.allclose(coupled.apoz[DEAD], 1.0)
    kept = choose_channels(report, parse_thresholds("all=0.999", report.groups), multiple=1)
    # the coupled pair loses exactly the dead channels, both the same ones
    assert [list(kept[s]) for s in coupled.sources] == [[0, 2, 3, 5, 7]] * 2
    pruned = apply_pruning(normalized, kept)
    onnx.checker.check_model(pruned)
    assert [i.name for i in pruned.graph.input] == [i.name for i in normalized.graph.input]
    assert [o.name for o in pruned.graph.output] == [o.name for o in normalized.graph.output]
    before = run_model(normalized, calib.inputs)
    after = run_model(pruned, calib.inputs)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-5)
    assert analyze(pruned).total_macs < analyze(normalized).total_macs


def test_rounding_to_multiple_keeps_more_channels() -> None:
    model, dead_convs = coupled_model()
    normalized = graph_from_model(_kill_channels(model, dead_convs, DEAD)).model
    report = measure_apoz(normalized, data(normalized), groups=1)
    sources = next(c.sources for c in report.clusters if len(c.sources) == 2)
    # 3 dead of 8: 5 would remain, rounded up to a multiple of 4 -> 8, so nothing is removed
    assert not any(s in choose_channels(report, {"g0": 0.999}, multiple=4) for s in sources)
    # with a multiple of 1 the five survivors stay; with 5 (> survivors) five stay as well
    assert [len(choose_channels(report, {"g0": 0.999}, multiple=m)[s]) for m in (1, 5) for s in sources[:1]] == [5, 5]


def test_threshold_one_prunes_nothing_alive_and_parse_errors() -> None:
    import pytest

    from explorer.errors import ExplorerError

    model, _ = coupled_model()
    normalized = graph_from_model(model).model
    report = measure_apoz(normalized, data(normalized), groups=2)
    assert report.groups == ("g0", "g1")
    with pytest.raises(ExplorerError, match="unknown layer group 'g7'"):
        parse_thresholds("g7=0.5", report.groups)
    with pytest.raises(ExplorerError, match=r"must be in \[0, 1\]"):
        parse_thresholds("g0=1.5", report.groups)


def test_abstain_leaves_whole_what_pruning_would_not_make_faster() -> None:
    """With the DPU's OCP given, a cluster whose kept channels need as many output-channel passes as before
    stays whole: 32 -> 28 channels is two passes of 16 either way; 32 -> 16 saves one."""
    from explorer.compress.prune import ApozReport, ClusterStats

    apoz = np.linspace(0.0, 0.99, 32)  # channel i is inactive more often as i grows
    report = ApozReport((ClusterStats(0, ("conv_a",), 32, apoz, "g0"),), (), ("g0",))
    few = {"g0": float(apoz[28])}  # removes the last 4 channels
    many = {"g0": float(apoz[16])}  # removes 16
    assert len(choose_channels(report, few, 4)["conv_a"]) == 28
    assert choose_channels(report, few, 4, abstain_ocp=16) == {}
    assert len(choose_channels(report, many, 4, abstain_ocp=16)["conv_a"]) == 16
    assert choose_channels(report, few, 4, abstain_ocp=8) == {}  # OCP 8: four passes either way
    assert len(choose_channels(report, few, 4, abstain_ocp=4)["conv_a"]) == 28  # OCP 4: eight passes -> seven


def test_iterative_pruning_goes_from_mild_to_the_thresholds_and_records_each_round(tmp_path: Path) -> None:
    """`rounds` k: round r prunes at t + (1 - t)(k - r)/k on the APoZ measured again on what the rounds before
    left (recovered); the kept channels are numbered as in the unpruned model; one round is plain pruning."""
    from explorer.compress.context import CompressionContext, CompressOptions
    from explorer.compress.prune import choose_channels
    from explorer.data.loaders import load_data
    from explorer.evaluators.builtin import load_evaluator

    model = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
    data, calibration = load_data("pose-synth:8:3", ["input"]), load_data("pose-synth:8:2", ["input"])
    ctx = CompressionContext(model, data, calibration, load_evaluator("pose"), tmp_path)
    one = CompressOptions(prune={"g2": 0.55}, quantize="none")
    assert {k: v.tolist() for k, v in ctx.schedule(one)[0].items()} == {
        k: v.tolist() for k, v in choose_channels(ctx.apoz(4), one.prune, one.prune_multiple, ranks=ctx.ranks()).items()
    }
    by_apoz = CompressOptions(prune={"g2": 0.55}, quantize="none", selection="apoz")
    assert {k: v.tolist() for k, v in ctx.schedule(by_apoz)[0].items()} == {
        k: v.tolist() for k, v in choose_channels(ctx.apoz(4), one.prune, one.prune_multiple).items()
    }
    three = CompressOptions(prune={"g2": 0.55}, quantize="none", rounds=3)
    kept, rounds = ctx.schedule(three)
    assert [r["round"] for r in rounds] == [1, 2, 3] and three.pruning_key != one.pruning_key
    assert [round(r["thresholds"]["g2"], 6) for r in rounds] == [0.85, 0.7, 0.55]
    left = [r["channels_left"] for r in rounds]
    assert left == sorted(left, reverse=True) and left[-1] < left[0] and kept
    sizes = {s: c.size for c in ctx.apoz(4).clusters for s in c.sources}
    for source, keep in kept.items():  # the unpruned model's numbering, each channel once, a multiple of 4 kept
        assert np.all(np.diff(keep) > 0) and keep[-1] < sizes[source] and len(keep) % 4 == 0
    result = ctx.measure_accuracy(three)
    assert [r["round"] for r in result.pruning_schedule] == [1, 2, 3] and result.macs_after < result.macs_before


def test_rounds_in_a_study_and_on_the_command_line(tmp_path: Path, capsys: object) -> None:
    import pytest

    from explorer.cli import main
    from explorer.errors import ConfigError
    from tests.study.test_runner import small_study

    assert small_study(tmp_path, "pruning: {rounds: 3}\n").pruning.rounds == 3
    with pytest.raises(ConfigError, match=r"pruning\.rounds"):
        small_study(tmp_path, "pruning: {rounds: 0}\n")
    model = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
    args = ["compress", str(model), "--data", "pose-synth:8:3", "--calib-data", "pose-synth:8:2", "--quantize", "none"]
    assert main([*args, "--prune", "g2=0.55", "--prune-rounds", "2", "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "round 1: thresholds g2=0.775" in out and "round 2: thresholds g2=0.550" in out
    assert main([*args, "--prune", "g2=0.55", "--prune-rounds", "0"]) == 1
