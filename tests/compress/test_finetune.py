"""The fine-tuning hook after pruning: the user's function changes the pruned model's weight values; the explorer
takes them, caches them, keys the accuracy by the hook, and says clearly what a broken hook did."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from explorer.compress.context import CompressionContext, CompressOptions
from explorer.compress.finetune import FinetuneHook
from explorer.data.loaders import load_data
from explorer.errors import ExplorerError
from explorer.evaluators.builtin import load_evaluator
from explorer.graph.util import initializers

EXAMPLE = Path(__file__).parents[2] / "examples" / "pose"
HOOK = """
import onnx
from pathlib import Path
from onnx import numpy_helper

def finetune(model_path, data, steps):
    with Path(__file__).with_name("calls.txt").open("a") as log:
        log.write(f"{len(data.inputs['input'])} {steps}\\n")
    model = onnx.load(model_path)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for init in model.graph.initializer:
        if init.name == conv.input[1]:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0.5, init.name))
    out = Path(model_path).with_name("tuned.onnx")
    onnx.save(model, str(out))
    return str(out)

def renames(model_path, data, steps):
    model = onnx.load(model_path)
    model.graph.initializer[0].name += "_renamed"
    out = Path(model_path).with_name("tuned.onnx")
    onnx.save(model, str(out))
    return out

def nothing(model_path, data, steps):
    return None

def fails(model_path, data, steps):
    raise RuntimeError("out of memory")
"""


def _context(tmp_path: Path) -> CompressionContext:
    data, calibration = load_data("pose-synth:8:3", ["input"]), load_data("pose-synth:6:2", ["input"])
    return CompressionContext(EXAMPLE / "mobilepose_dsnt.onnx", data, calibration, load_evaluator("pose"), tmp_path / "cache")


def _hook(tmp_path: Path, name: str, steps: int = 7) -> FinetuneHook:
    file = tmp_path / "hooks" / "tune.py"
    file.parent.mkdir(exist_ok=True)
    file.write_text(HOOK)
    return FinetuneHook(f"{file}:{name}", steps)


def test_the_hook_changes_weights_that_are_cached_and_key_the_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = _context(tmp_path)
    hook = _hook(tmp_path, "finetune")
    plain = CompressOptions(prune={"g2": 0.6}, quantize="none")
    tuned = CompressOptions(prune={"g2": 0.6}, quantize="none", finetune=hook)
    model, graph, _ = ctx.pruned(tuned)
    before = initializers(ctx.pruned(plain)[0])
    after = initializers(model)
    changed = [n for n in after if not np.array_equal(after[n], before[n])]
    assert len(changed) == 1 and np.allclose(after[changed[0]], before[changed[0]] * 0.5)
    assert np.array_equal(initializers(graph.model)[changed[0]], after[changed[0]])  # the timing graph too
    assert ctx.measure_accuracy(tuned).key != ctx.measure_accuracy(plain).key
    assert (tmp_path / "hooks" / "calls.txt").read_text() == "6 7\n"  # the calibration data and the step budget
    # a new context reads the fine-tuned weights from the disk cache: the hook is not called again
    again = _context(tmp_path)
    assert np.array_equal(initializers(again.pruned(tuned)[0])[changed[0]], after[changed[0]])
    assert (tmp_path / "hooks" / "calls.txt").read_text() == "6 7\n"
    # another step budget, or an edited hook, is another fine-tuning
    assert FinetuneHook(hook.spec, 8).identity() != hook.identity()
    identity = hook.identity()
    Path(hook.spec.rpartition(":")[0]).write_text(HOOK + "\n# edited\n")
    assert hook.identity() != identity


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("renames", "must keep the pruned model's weights by name and shape"),
        ("nothing", "must return the path of the fine-tuned ONNX model; it returned None"),
        ("fails", "failed: RuntimeError: out of memory"),
        ("absent", "has no function 'absent'"),
    ],
)
def test_a_broken_hook_says_what_it_did(tmp_path: Path, name: str, message: str) -> None:
    ctx = _context(tmp_path)
    with pytest.raises(ExplorerError, match=message):
        ctx.pruned(CompressOptions(prune={"g2": 0.6}, quantize="none", finetune=_hook(tmp_path, name)))


def test_the_study_file_names_the_hook_and_its_steps(tmp_path: Path) -> None:
    from explorer.errors import ConfigError
    from tests.study.test_runner import small_study

    (tmp_path / "tune.py").write_text(HOOK)
    cfg = small_study(tmp_path, "finetune: {hook: tune.py:finetune, steps: 40}\n")
    assert cfg.pruning.finetune == FinetuneHook(f"{(tmp_path / 'tune.py').resolve()}:finetune", 40)
    assert small_study(tmp_path, "finetune: tune.py:finetune\n").pruning.finetune.steps == 300  # type: ignore[union-attr]
    for text, path in (
        ("finetune: {hook: missing.py:finetune}\n", "finetune.hook"),
        ("finetune: {hook: tune.py:finetune, steps: 0}\n", "finetune.steps"),
        ("finetune: tune.py\n", "finetune"),
        ("finetune: {hook: tune.py:finetune, step: 3}\n", "finetune"),
        ("finetune: 5\n", "finetune: expected a mapping"),
        ("finetune: {steps: 3}\n", "finetune.hook"),
    ):
        with pytest.raises(ConfigError) as err:
            small_study(tmp_path, text)
        assert path in str(err.value), (text, str(err.value))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the example's fine-tuning needs torch (the train extra)")
def test_the_example_hook_runs_the_graph_in_torch_and_trains_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from explorer.hooks import load_function
    from explorer.runtime import run_model

    _, module = load_function(f"{EXAMPLE / 'finetune.py'}:finetune", None, "finetune hook")
    ctx = _context(tmp_path)
    pruned = ctx.pruned(CompressOptions(prune={"g2": 0.6}, quantize="none"))[0]
    x = ctx.data.inputs["input"][:4]
    net = module.OnnxNet(pruned).eval()
    with torch.no_grad():
        got = net(torch.from_numpy(np.tile(x, (8, 1, 1, 1))))  # the evaluation model's fixed batch of 32
    want = run_model(pruned, {"input": x})
    assert np.allclose(got["coords"][:4].numpy(), want["coords"], atol=1e-4)
    monkeypatch.setattr(module, "TRAIN_SIZE", 40)  # a few generated images: the test checks the plumbing
    path = tmp_path / "pruned.onnx"
    import onnx

    onnx.save(pruned, str(path))
    tuned = onnx.load(module.finetune(str(path), ctx.calibration, steps=2))
    a, b = initializers(pruned), initializers(tuned)
    assert a.keys() == b.keys() and all(a[n].shape == b[n].shape for n in a)
    assert any(not np.array_equal(a[n], b[n]) for n in a)


def test_explore_compress_fine_tunes_with_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from explorer.cli import main

    monkeypatch.chdir(tmp_path)
    _hook(tmp_path, "finetune")
    args = ["compress", str(EXAMPLE / "mobilepose_dsnt.onnx"), "--data", "pose-synth:8:3", "--calib-data", "pose-synth:6:2"]
    args += ["--prune", "g2=0.6", "--quantize", "none", "--cache-dir", str(tmp_path / "cache"), "--json"]
    assert main([*args, "--finetune", "hooks/tune.py:finetune", "--finetune-steps", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["options"]["finetune"] == {"spec": f"{tmp_path / 'hooks' / 'tune.py'}:finetune", "steps": 5}
    assert (tmp_path / "hooks" / "calls.txt").read_text() == "6 5\n"
    assert main([*args, "--finetune", "hooks/none.py:finetune"]) == 1
    assert "no such file" in capsys.readouterr().err
