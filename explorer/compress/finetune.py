"""Fine-tuning after pruning, through the user's hook (`finetune:` in a study, `--finetune` on `explore compress`).

The hook is a function `finetune(model_path, data, steps) -> str`, named `module:function` or
`path/to/file.py:function`. It receives the path of the pruned (and reconstructed) ONNX model as the explorer
evaluates it (its input at the evaluation batch size), the study's calibration data (an `explorer.data.loaders.Dataset`:
`inputs`, `labels`) and a step budget, and returns the path of the fine-tuned ONNX model. Where and how it trains
is its own (its own data, its own framework); `examples/pose/finetune.py` is the reference, in torch.

The fine-tuned model keeps the pruned model's graph: its weights by name and shape, with other values. The
explorer takes those values into the pruned model it then quantizes, times and evaluates, so a fine-tuned design
point is placed and partitioned exactly as the pruned one. The values are cached on disk like the reconstruction's,
keyed by the kept channels, the recovery, the hook (its spec and the digest of its file) and the step budget.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.errors import ExplorerError
from explorer.fileio import file_digest
from explorer.hooks import hook_file, load_function

if TYPE_CHECKING:  # a study file names a hook without importing onnx (the command line starts without it)
    import numpy as np
    import onnx

    from explorer.data.loaders import Dataset

DEFAULT_STEPS = 300  # the step budget when a study or the command line gives none
WHAT = "finetune hook"


@dataclass(frozen=True)
class FinetuneHook:
    spec: str  # module:function or path/to/file.py:function (a path resolved when the study was read)
    steps: int = DEFAULT_STEPS

    def identity(self) -> str:
        """What the fine-tuned weights depend on besides the pruned model and data: the spec, its file's
        digest (an edited hook fine-tunes again) and the step budget."""
        file = hook_file(self.spec)
        return f"{self.spec}|{file_digest(file) if file is not None and file.is_file() else ''}|{self.steps}"


def resolve_spec(spec: str, base_dir: Path | None) -> str:
    """`spec` with a relative `file.py` path made absolute against `base_dir` (the study file's folder)."""
    file = hook_file(spec, base_dir)
    return f"{file.resolve()}:{spec.rpartition(':')[2]}" if file is not None else spec


def finetuned_weights(hook: FinetuneHook, model: onnx.ModelProto, data: Dataset) -> dict[str, np.ndarray]:
    """The weights the hook changed, by initializer name (values only: names and shapes are checked)."""
    import numpy as np
    import onnx

    from explorer.graph.util import initializers

    function, _ = load_function(hook.spec, None, WHAT)
    with tempfile.TemporaryDirectory(prefix="explorer-finetune-") as tmp:
        path = Path(tmp) / "pruned.onnx"
        onnx.save(model, str(path))
        try:
            result = function(str(path), data, hook.steps)
        except Exception as exc:
            raise ExplorerError(f"{WHAT} {hook.spec!r} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, str | os.PathLike) or not Path(result).is_file():
            raise ExplorerError(f"{WHAT} {hook.spec!r} must return the path of the fine-tuned ONNX model; it returned {result!r}")
        try:
            tuned = onnx.load(str(result))
        except Exception as exc:
            raise ExplorerError(f"{WHAT} {hook.spec!r}: {result} is not an ONNX model: {exc}") from exc
    before, after = initializers(model), initializers(tuned)
    for name, value in before.items():
        if name not in after or after[name].shape != value.shape:
            raise ExplorerError(
                f"{WHAT} {hook.spec!r}: the fine-tuned model must keep the pruned model's weights by name and shape "
                f"(only their values change); {name!r} {'is missing' if name not in after else 'changed its shape'}"
            )
    return {name: after[name].astype(value.dtype) for name, value in before.items() if not np.array_equal(after[name], value)}
