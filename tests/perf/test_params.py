"""The latency model's parameter file: read, and refitted values written back where they are read from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from explorer.datafiles import data_path
from explorer.perf.params import CPU_FITTED, DPU_FITTED, PARAMS_FILE, load_params, read_params, write_fitted


@pytest.fixture
def params_copy(tmp_path: Path) -> Path:
    path = tmp_path / "latency_model.yaml"
    path.write_text(data_path(*PARAMS_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_shipped_file_loads() -> None:
    assert read_params(data_path(*PARAMS_FILE)) == load_params()


def test_write_fitted_round_trips_every_fitted_value(params_copy: Path) -> None:
    original = read_params(params_copy)
    before = params_copy.read_text(encoding="utf-8")
    changed = original.with_values(**{k: 1.5 + i for i, k in enumerate(DPU_FITTED)}, io_ns_per_element_at_1ghz=7.25)
    cpu = dict(changed.cpu)
    for kind, keys in CPU_FITTED.items():
        # the A9 shares the A53's fitted structure except its own keys
        cpu[kind] = replace(
            cpu["cortex-a53"] if kind == "cortex-a9" else cpu[kind], **{k: 0.125 * (i + 1) for i, k in enumerate(keys)}
        )
    changed = replace(changed, cpu=cpu)
    write_fitted(changed, params_copy)
    assert read_params(params_copy) == changed
    after = params_copy.read_text(encoding="utf-8")
    # comments and layout stay: same number of lines, the same comment lines
    assert len(after.splitlines()) == len(before.splitlines())
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments == [line for line in after.splitlines() if line.lstrip().startswith("#")]


def test_a_value_both_fixed_and_fitted_is_refused(params_copy: Path) -> None:
    text = params_copy.read_text(encoding="utf-8")
    params_copy.write_text(text.replace("    cortex-a9:\n", "    cortex-a9:\n      relative_speed: 0.5\n"), encoding="utf-8")
    with pytest.raises(ValueError, match="cortex-a9: relative_speed is both fixed and fitted"):
        read_params(params_copy)


def test_missing_fitted_key_names_it(params_copy: Path) -> None:
    text = params_copy.read_text(encoding="utf-8")
    params_copy.write_text(text.replace("port_efficiency:", "port_eff:"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"dpu\.fitted\.port_efficiency"):
        write_fitted(load_params(), params_copy)
