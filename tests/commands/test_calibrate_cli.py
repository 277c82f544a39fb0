"""`explore calibrate` options (issue #14): the fit's strength is auto or a number from 0 to 1."""

from __future__ import annotations

import argparse

import pytest

from explorer.commands.calibrate import _strength


def test_strength_is_auto_or_a_number_from_0_to_1() -> None:
    assert _strength("auto") is None
    assert _strength("0") == 0.0 and _strength("0.5") == 0.5 and _strength("1") == 1.0
    for bad in ("2", "-0.1", "nan", "half"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected auto or a number from 0 to 1"):
            _strength(bad)
