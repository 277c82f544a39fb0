"""Compression passes: APoZ channel pruning and DPU-style power-of-two int8 quantization.

The names below are what the command line and the study file offer; they live here, apart from the
passes, so that reading them does not import onnx (the command line starts without it).
"""

from __future__ import annotations

import os
from pathlib import Path

QUANTIZE_MODES = ("none", "dpu", "all")  # int8 for nothing, the DPU part (the seeds' "Y+N"), everything ("Y+Y")
CALIBRATION_METHODS = ("minmax", "percentile", "mse")  # activation calibration of the int8 scales


def default_cache_dir() -> Path:
    """The accuracy cache: $XDG_CACHE_HOME/dpu-explorer, else ~/.cache/dpu-explorer."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dpu-explorer"


RECOVERY = ("reconstruct", "none")  # after pruning: least-squares reconstruction (reconstruct.py), or nothing
# which channels a pruned cluster loses (APoZ says how many): the ones the consumers' refit can best do
# without (selection.py, the default), or the most often zero
SELECTIONS = ("reconstruction", "apoz")
