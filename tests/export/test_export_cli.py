"""`explore export`, `import-build` and `import-run` end to end on a small study of the example model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from explorer.cli import main
from explorer.compress.context import CompressionContext, CompressOptions
from explorer.data.loaders import load_data
from explorer.evaluators.builtin import load_evaluator
from explorer.export.model import model_parts
from explorer.fileio import file_digest
from explorer.perf.measurements import read_measurements
from explorer.study.config import load_study
from explorer.study.runner import run_study
from tests.export.tclrun import run_build

EXAMPLE = Path(__file__).parents[2] / "examples" / "pose"
DATA = Path(__file__).with_name("data")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def study_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    path = folder / "study.yaml"
    path.write_text(
        f"model: {EXAMPLE / 'mobilepose_dsnt.onnx'}\ndata: pose-synth:12:3\ncalibration_data: pose-synth:6:2\n"
        "board: ultra96v2\nsampler: random\nn_trials: 4\noutput: out\nseed: 3\n"
        "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n"
    )
    run_study(load_study(path), progress=False)
    return path


def test_export_without_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dpu = tmp_path / "dpu.yaml"
    dpu.write_text("dpu: {arch: B2304, cores: 2, clock_mhz: 287.5}\n")
    code, out, _ = run(capsys, "export", "--dpu", str(dpu), "--board", "zcu104", "-o", str(tmp_path / "e"), "--flow", "vitis")
    assert code == 0 and "exported the given configuration" in out
    manifest = json.loads((tmp_path / "e" / "export.json").read_text())
    assert manifest["dpu"]["arch"] == "B2304" and manifest["estimate"]["source"] == "model"
    prj = (tmp_path / "e" / "vitis" / "prj_config").read_text()
    assert "freqHz=287500000:DPUCZDX8G_1.aclk" in prj and "freqHz=575000000:DPUCZDX8G_2.ap_clk_2" in prj
    assert "nk=DPUCZDX8G:2" in prj and "`define B2304" in (tmp_path / "e" / "vitis" / "dpu_conf.vh").read_text()
    assert json.loads((tmp_path / "e" / "deploy" / "arch.json").read_text())["fingerprint"] == manifest["fingerprint"]
    # the folder is now in use; bad requests say what to do
    code, _, err = run(capsys, "export", "--board", "zcu104", "-o", str(tmp_path / "e"))
    assert code == 1 and "not empty" in err
    code, _, err = run(capsys, "export", "--board", "zcu104", "--trial", "1", "-o", str(tmp_path / "f"))
    assert code == 1 and "drop --board" in err
    code, _, err = run(capsys, "export", "--board", "pynq-z2", "--softmax", "-o", str(tmp_path / "g"))
    assert code == 3 and "softmax" in err
    code, _, err = run(capsys, "export", "--board", "pynq-z2", "--arch", "B4096", "-o", str(tmp_path / "g"))
    assert code == 0 and "exceeds the ceilings of XC7Z020" in err and "dsp" in err  # written, with a warning
    code, _, err = run(
        capsys, "export", "--board", "pynq-z2", "--arch", "B800", "--ceiling", "lut=0.3", "-o", str(tmp_path / "h")
    )
    assert code == 0 and "lut" in err and "ceiling 30 %" in err and "dsp" not in err


def test_model_parts_chain_to_the_whole_model(study_file: Path) -> None:
    cfg = load_study(study_file)
    calib = load_data(cfg.data.calibration or cfg.data.evaluation, ["input"], cfg.base_dir)
    ctx = CompressionContext(cfg.model.path, calib, calib, load_evaluator(cfg.data.evaluator), cfg.store.output / "cache")
    whole = model_parts(ctx, CompressOptions(split=None), "net")
    assert whole.cpu_part is None and whole.cut_tensors == whole.outputs
    feed = {"input": calib.inputs["input"][:1].astype(np.float32)}
    expected = ort.InferenceSession(whole.dpu_part.SerializeToString()).run(None, feed)
    for split in (5, 20):
        parts = model_parts(ctx, CompressOptions(split=split, quantize="all"), "net")
        assert parts.cpu_part is not None and parts.cpu_part_int8 is not None
        head = ort.InferenceSession(parts.dpu_part.SerializeToString())
        tensors = dict(feed)
        tensors.update(zip([o.name for o in head.get_outputs()], head.run(None, feed), strict=True))
        tail = ort.InferenceSession(parts.cpu_part.SerializeToString())
        got = tail.run(None, {i.name: tensors[i.name] for i in tail.get_inputs()})
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        int8 = ort.InferenceSession(parts.cpu_part_int8.SerializeToString())
        assert any(n.op_type == "QuantizeLinear" for n in parts.cpu_part_int8.graph.node)
        approx = int8.run(None, {i.name: tensors[i.name] for i in int8.get_inputs()})
        assert np.abs(approx[-1] - expected[-1]).max() < 0.25 * (np.abs(expected[-1]).max() + 1e-6) + 0.05


def test_export_build_import_and_report(study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    code, text, err = run(capsys, "export", str(study_file), "--best", "fps_multi", "-o", str(out), "--jobs", "2")
    assert code == 0, err
    manifest = json.loads((out / "export.json").read_text())
    trial = manifest["origin"]["trial"]
    assert f"trial {trial}" in text and manifest["origin"]["why"].startswith("best fps_multi")
    deploy = json.loads((out / "deploy" / "deploy.json").read_text())
    assert deploy["origin"]["trial"] == trial and (out / "deploy" / deploy["model"]["dpu_part"]).is_file()
    readme = (out / "README.md").read_text()
    assert "estimate (source: model)" in readme and "explore import-build" in readme
    # build with the stub Vivado, which writes the stored reports where implement.tcl asks for them
    run_build(
        out,
        env_repo=str(tmp_path),
        reports={
            "report_utilization": DATA / "utilization_zu3eg_2022.rpt",
            "report_timing_summary": DATA / "timing_summary_met.rpt",
        },
    )
    code, text, err = run(capsys, "import-build", str(out))
    assert code == 0, err
    assert "timing met" in text and "would close at 205.8 MHz (measured)" in text
    trial_folder = study_file.parent / "out" / "trials" / f"{trial:05d}"
    measured = json.loads((trial_folder / "measured.json").read_text())
    assert measured["build"]["resources"]["lut"] == 40128 and measured["build"]["source"].startswith("measured")
    # a board result names its trial through deploy.json's origin
    result = tmp_path / "result.json"
    result.write_text(
        json.dumps(
            {
                "schema": "dpu-explorer/board-run/1",
                "source": "board",
                "board": "Ultra96-V2",
                "origin": deploy["origin"],
                "fps_single": 123.0,
                "fps_multi": 201.0,
                "latency_ms": {"median": 8.1, "p90": 8.5, "mean": 8.2},
                "dpu_ms": 6.0,
                "cpu_ms": 2.1,
                "frames": 200,
                "threads": 2,
                "runtime": "vart",
            }
        )
    )
    code, text, err = run(capsys, "import-run", str(result))
    assert code == 0, err
    assert "recorded in" in text
    assert json.loads((trial_folder / "measured.json").read_text())["run"]["fps_multi"] == 201.0
    metrics = json.loads((trial_folder / "metrics.json").read_text())["metrics"]
    code, _, err = run(capsys, "report", str(study_file))
    assert code == 0, err
    page = (study_file.parent / "out" / "report.html").read_text()
    assert "Measured on hardware" in page and 'id="measured-table"' in page and "201" in page
    # the board run closes the loop: a calibration profile fitted to the study's own measurements
    profile = tmp_path / "ultra96.yaml"
    code, text, err = run(capsys, "calibrate", "--board", "ultra96-v2", "--measurements", str(study_file), "-o", str(profile))
    assert code == 0, err
    assert "2 measurement(s) on Ultra96-V2" in text and "fps_single" in text and "fps_multi" in text
    fitted = yaml.safe_load(profile.read_text())["fitted_to"]
    assert [row["value"] for row in fitted] == [123.0, 201.0] and fitted[1]["threads"] == 2
    assert all(Path(row["model"]).is_file() and row["model"].endswith(f"trial_{trial:05d}.onnx") for row in fitted)
    code, _, err = run(capsys, "calibrate", "--board", "kv260", "--measurements", str(study_file), "-o", str(profile))
    assert code == 1 and "the study is for Ultra96-V2, not KV260" in err
    # the study's measurement store holds both, with the design point, the model's digest and the estimate
    store = [json.loads(line) for line in (study_file.parent / "out" / "measurements.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in store] == ["build", "run"] and {e["trial"] for e in store} == {trial}
    run_entry = store[1]
    assert run_entry["source"].startswith("measured: board run (vart)") and run_entry["timed"] == "e2e"
    assert run_entry["measured"]["latency_ms"] == 8.1 and run_entry["threads"] == 2
    assert run_entry["estimate"]["fps_multi"] == pytest.approx(metrics["fps_multi"])
    assert run_entry["model"]["digest"] == file_digest(Path(run_entry["model"]["path"]))
    assert run_entry["design_point"]["dpu"] == json.loads((trial_folder / "metrics.json").read_text())["design_point"]["dpu"]
    # the same result again is not a new measurement; another one is kept beside the first
    assert run(capsys, "import-run", str(result))[0] == 0
    assert len((study_file.parent / "out" / "measurements.jsonl").read_text().splitlines()) == 2
    second = json.loads(result.read_text()) | {"fps_single": 120.0, "fps_multi": 199.0}
    result.write_text(json.dumps(second))
    assert run(capsys, "import-run", str(result))[0] == 0
    code, text, err = run(capsys, "measurements", str(study_file))
    assert code == 0, err
    assert "3 measurement(s)" in text and "fps_single 123 (model" in text and "fps_single 120 (model" in text
    # as a calibration CSV: both runs (four rows), read back as calibrate reads it, and fitted from the file
    csv_file = tmp_path / "runs" / "measured.csv"
    code, text, err = run(capsys, "measurements", str(study_file), "--csv", str(csv_file))
    assert code == 0, err
    rows = read_measurements(csv_file)
    assert [(r.metric, r.value, r.threads) for r in rows] == [
        ("fps_single", 123.0, 1),
        ("fps_multi", 201.0, 2),
        ("fps_single", 120.0, 1),
        ("fps_multi", 199.0, 2),
    ]
    assert rows[0].dpu == store[0]["design_point"]["dpu"] and rows[0].model.is_file()
    code, text, err = run(capsys, "calibrate", "--board", "ultra96-v2", "--measurements", str(csv_file), "-o", str(profile))
    assert code == 0 and "4 measurement(s) on Ultra96-V2" in text, err


def test_import_errors(study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert run(capsys, "export", str(study_file), "--trial", "0", "--no-model", "-o", str(out))[0] == 0
    code, _, err = run(capsys, "import-build", str(out))
    assert code == 1 and "no utilization report" in err
    (out / "reports").mkdir()
    shutil.copy(DATA / "utilization_z7020_2020.rpt", out / "reports" / "utilization.rpt")
    shutil.copy(DATA / "timing_summary_met.rpt", out / "reports" / "timing_summary.rpt")
    code, _, err = run(capsys, "import-build", str(out))
    assert code == 1 and "is for device 7z020clg400-1" in err
    code, _, err = run(capsys, "import-build", str(tmp_path))
    assert code == 1 and "not an export folder" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "dpu-explorer/board-run/1", "source": "board", "fps_single": 1.0, "fps_multi": 1.0,
                               "latency_ms": {"median": 1.0}, "dpu_ms": 1.0, "cpu_ms": 0.0}))  # fmt: skip
    code, _, err = run(capsys, "import-run", str(bad))
    assert code == 1 and "pass --study and --trial" in err
    code, _, err = run(capsys, "import-run", str(bad), "--study", str(study_file), "--trial", "999")
    assert code == 1 and "no finished trial 999" in err
    (out / "export.json").write_text("{broken")
    code, _, err = run(capsys, "import-build", str(out))
    assert code == 1 and "export.json: not JSON" in err
    code, _, err = run(capsys, "export", str(study_file), "--best", "lut", "-o", str(tmp_path / "x"))
    assert code == 1 and "not an objective" in err
    code, _, err = run(capsys, "export", str(study_file), "--trial", "99", "-o", str(tmp_path / "x"))
    assert code == 1 and "no trial 99" in err


def test_deploy_scripts_fail_clearly_off_board(study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert run(capsys, "export", str(study_file), "--trial", "1", "-o", str(out), "--flow", "vitis")[0] == 0
    deploy = out / "deploy"
    for script in ("run_on_board.py", "quantize_dpu_part.py"):
        subprocess.run([sys.executable, "-m", "py_compile", str(deploy / script)], check=True)
    net = json.loads((deploy / "deploy.json").read_text())["model"]["net_name"]
    done = subprocess.run([sys.executable, str(deploy / "run_on_board.py")], capture_output=True, text=True)
    assert done.returncode == 2 and "compile first" in done.stderr
    (deploy / "compiled").mkdir()
    (deploy / "compiled" / f"{net}.xmodel").write_bytes(b"")
    done = subprocess.run([sys.executable, str(deploy / "run_on_board.py")], capture_output=True, text=True)
    assert done.returncode == 2 and "vart/xir are not importable" in done.stderr  # never faked off the board
    assert subprocess.run(["bash", "-n", str(deploy / "compile.sh")]).returncode == 0
    done = subprocess.run(["bash", str(deploy / "compile.sh")], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "vai_c_xir not found" in done.stderr


def test_no_study_means_the_bundled_example_and_reading_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `explore run` with no study runs the bundled example into ./explore-out; report and export default
    # to the same study, and before it has run they say so without creating its storage
    monkeypatch.chdir(tmp_path)
    for argv in (("report",), ("export", "--trial", "0", "-o", str(tmp_path / "out"))):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "study 'study_ultra96' has no trials yet" in err and "run `explore run` first" in err
    assert list(tmp_path.iterdir()) == []


def test_a_cpu_only_design_point_is_exported_and_measured_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Split 0: no DPU part, nothing to compile; run_on_board.py runs the model with onnxruntime on this host
    (a real measurement, naming the host and CPU), and import-run records it."""
    study = tmp_path / "study.yaml"
    study.write_text(
        f"model: {EXAMPLE / 'mobilepose_dsnt.onnx'}\ndata: pose-synth:8:3\ncalibration_data: pose-synth:4:2\n"
        "board: ultra96v2\nsampler: random\nn_trials: 1\noutput: out\nseed: 3\n"
        "search_space:\n  files: [dpu_zynqmp.yaml, pruning.yaml, split.yaml]\n  overrides:\n"
        "    split.split: {choices: [0]}\n    split.cpu_precision: {choices: [fp32]}\n"
        "objectives:\n  - {metric: fps_multi, direction: maximize}\n  - {metric: euclidean_error, direction: minimize}\n"
    )
    run_study(load_study(study), progress=False)
    out = tmp_path / "export"
    code, _, err = run(capsys, "export", str(study), "--trial", "0", "-o", str(out))
    assert code == 0, err
    deploy = json.loads((out / "deploy" / "deploy.json").read_text())
    assert deploy["model"]["dpu_part"] is None and deploy["model"]["xmodel"] is None and deploy["model"]["split"] == 0
    assert not (out / "deploy" / "model" / "dpu_part.onnx").exists() and (out / "deploy" / "model" / "cpu_part.onnx").is_file()
    compiled = subprocess.run(["bash", str(out / "deploy" / "compile.sh")], capture_output=True, text=True)
    assert compiled.returncode == 0 and "no DPU part to compile" in compiled.stderr
    result = tmp_path / "cpu_run.json"
    board_run = subprocess.run(
        [
            sys.executable,
            str(out / "deploy" / "run_on_board.py"),
            "--frames",
            "6",
            "--warmup",
            "1",
            "--threads",
            "2",
            "--out",
            str(result),
        ],
        capture_output=True,
        text=True,
    )
    assert board_run.returncode == 0, board_run.stderr
    measured = json.loads(result.read_text())
    assert measured["runtime"] == "onnxruntime (CPU only)" and measured["dpu_ms"] == 0 and measured["fps_single"] > 0
    assert measured["host"] and measured["cpu"]
    code, text, err = run(capsys, "import-run", str(result))
    assert code == 0, err
    assert "recorded in" in text
    trial_folder = tmp_path / "out" / "trials" / "00000"
    assert json.loads((trial_folder / "measured.json").read_text())["run"]["runtime"] == "onnxruntime (CPU only)"


def test_export_refuses_to_rebuild_a_trial_with_other_channels(
    study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial records which channels its measured model kept; when the study's pruning would now keep others
    (here the channel selection switched to APoZ's order), export says so instead of exporting another model."""
    from explorer.study.runner import load_records

    cfg = load_study(study_file)
    records = [r for r in load_records(cfg) if r.complete and r.details is not None]
    macs = max(r.metrics["macs"] for r in records)
    pruned = [r for r in records if r.metrics["macs"] < macs]
    assert pruned and all(r.details and r.details.kept_channels for r in records)
    trial = pruned[0].number
    code, _, err = run(capsys, "export", str(study_file), "--trial", str(trial), "-o", str(tmp_path / "same"))
    assert code == 0, err
    other = study_file.with_name("apoz.yaml")
    text = study_file.read_text()
    other.write_text(text + f"study_name: {cfg.store.study_name}\npruning: {{selection: apoz}}\n")
    code, _, err = run(capsys, "export", str(other), "--trial", str(trial), "-o", str(tmp_path / "other"))
    assert code != 0 and f"trial {trial} measured a model that kept other channels" in err
    assert "the selection is 'apoz' now" in err and not (tmp_path / "other").exists()
