"""The wheel carries the data folders: an installed copy works outside the repository."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def borrow_dependencies(python: Path) -> None:
    """Let the new venv import the dependencies of the environment running the tests (system Python, a venv
    or CI alike), with no download: a .pth file lists that environment's site-packages. They come after the
    venv's own site-packages, so the wheel's copy of `explorer` is the one imported; the editable install's
    own .pth hook is not processed from a borrowed folder."""
    here = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    theirs = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(theirs) / "borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(here)))


@pytest.mark.slow
def test_installed_wheel_runs_outside_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("dpu_explorer-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    borrow_dependencies(python)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    explore = env_dir / "bin" / "explore"
    version = subprocess.run([str(explore), "--version"], cwd=outside, check=True, capture_output=True, text=True)
    assert version.stdout.startswith("explore ")
    result = subprocess.run(
        [str(explore), "hw", "resources", "--board", "kv260", "--uram-per-core", "46", "--json"],
        cwd=outside,
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(result.stdout)["dsp"] == 710
    where = subprocess.run(
        [str(python), "-c", "import explorer.datafiles as d; print(d.__file__, d.data_path('hw', 'boards.yaml'))"],
        cwd=outside,
        check=True,
        capture_output=True,
        text=True,
    )
    package, data = where.stdout.split()
    assert package.startswith(str(env_dir)) and data.startswith(str(env_dir)) and "_data" in data
    # the export templates (tcl/, deploy/) and hw/block_design.yaml travel in the wheel too
    subprocess.run(
        [str(explore), "export", "--board", "ultra96v2", "--arch", "B1600", "-o", str(outside / "exp")],
        cwd=outside,
        check=True,
        capture_output=True,
        text=True,
    )
    assert (outside / "exp" / "block_design.tcl").is_file() and (outside / "exp" / "deploy" / "run_on_board.py").is_file()
