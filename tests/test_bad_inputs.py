"""The bad-input corpus (tests/data/bad/cases.yaml): every case ends in its exact message and exit code,
never a traceback, and writes nothing it should not."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from explorer.cli import main

HERE = Path(__file__).parent / "data" / "bad"
EXAMPLE = Path(__file__).parents[1] / "examples" / "pose" / "mobilepose_dsnt.onnx"
STUDY = "model: '{example}'\ndata: pose-synth:8:3\ncalibration_data: pose-synth:4:2\nboard: ultra96-v2\nn_trials: 2\n"
CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "cases.yaml").read_text())


def fill(text: str, tmp: Path) -> str:
    return text.replace("{study}", STUDY).replace("{example}", str(EXAMPLE)).replace("{tmp}", str(tmp))


def write_file(path: Path, spec: Any, tmp: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(spec, str):
        path.write_text(fill(spec, tmp))
    elif "truncate" in spec:
        path.write_bytes(EXAMPLE.read_bytes()[: spec["truncate"]])
    elif "npz" in spec:
        np.savez(path, **{name: np.zeros(shape, np.float32) for name, shape in spec["npz"].items()})
    elif "copy" in spec:
        shutil.copyfile(HERE / spec["copy"], path)
    else:
        raise AssertionError(f"unknown file spec {spec!r}")


def run_case(case: dict[str, Any], tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    for argv in case.get("setup", []):
        assert main([fill(a, tmp) for a in argv]) == 0, capsys.readouterr().err
    for name, spec in (case.get("files") or {}).items():
        write_file(tmp / name, spec, tmp)
    capsys.readouterr()
    code = main([fill(str(a), tmp) for a in case["argv"]])
    return code, capsys.readouterr().err


def test_the_corpus_is_large_and_named_once() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) >= 60 and len(set(names)) == len(names)
    assert all(("stderr" in c) != ("stderr_pattern" in c) for c in CASES), "each case names its message once"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input(
    case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    code, err = run_case(case, tmp_path, capsys)
    assert "Traceback" not in err
    message = err.strip().replace(str(tmp_path), "{tmp}").replace(str(EXAMPLE), "{example}")
    if "stderr_pattern" in case:
        assert re.fullmatch(case["stderr_pattern"], message), message
    else:
        assert message == case["stderr"].strip()
    assert code == case["exit"], message
