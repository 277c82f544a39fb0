"""The stored IP 4.x coefficients are the least-squares fit of their published rows."""

from __future__ import annotations

import pytest

from explorer.hardware.alu_fit import fit_v4_alu
from explorer.hardware.database import load_database


def test_stored_v4_coefficients_equal_the_refit() -> None:
    fit, stored = fit_v4_alu(), load_database().ip.v4
    assert stored.lut_offset == pytest.approx(fit.lut_offset, abs=1)
    assert stored.lut_per_alu_lane == pytest.approx(fit.lut_per_alu_lane, abs=0.01)
    assert stored.ff_offset == pytest.approx(fit.ff_offset, abs=1)
    assert stored.ff_per_alu_lane == pytest.approx(fit.ff_per_alu_lane, abs=0.01)


def test_fit_residuals_are_small_but_not_zero() -> None:
    # Two coefficients for four rows: a physical fit leaves residuals (it does not memorise the rows).
    fit = fit_v4_alu()
    assert all(abs(lut) < 200 and abs(ff) < 600 for _, lut, ff in fit.residuals)
    assert any(abs(lut) > 1 for _, lut, _ in fit.residuals)
