"""Fine-tune a pruned MobilePose-DSNT on generated poses: the reference fine-tuning hook of dpu-explorer.

    explore compress examples/pose/mobilepose_dsnt.onnx --data pose-synth:200:3 --calib-data pose-synth:64:2 \\
        --prune all=0.6 --finetune examples/pose/finetune.py:finetune --finetune-steps 1000
    # in a study file:  finetune: {hook: finetune.py:finetune, steps: 600}

The hook's contract (explorer/compress/finetune.py): `finetune(model_path, data, steps) -> str` gets the path of
the pruned (and reconstructed) ONNX model as the explorer evaluates it, the study's calibration data and a step
budget, and returns the path of the fine-tuned model, which keeps the pruned model's weights by name and shape
and changes their values.

How this one works: `OnnxNet` runs the ONNX graph in torch node by node, each convolution's weight and bias a
trainable parameter (everything else constant). The loop trains it with train.py's loss (Euclidean distance
plus the DSNT Jensen-Shannon regulariser) on generated poses of the training seed (never the calibration or
evaluation images), AdamW with a cosine decay, then writes the new values into the same ONNX graph. To plug in
your own training loop, keep that contract: train however you like, and hand back the model with the values
of its initializers changed, not their names or shapes. The `data` argument (the calibration set) is not used
here: generated poses are plentiful; a hook for a real dataset would load its own training split.

Needs torch (the `train` extra: pip install -e '.[train]', or pip install torch==2.13.0, the CPU build).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from explorer.data.pose_synth import TRAIN_SEED, make_pose_dataset
from explorer.evaluators.pose import gaussian_heatmaps

SIZE, HEATMAP = 96, 24
TRAIN_SIZE = 6000  # generated training images (made once per process, about 20 s on 2 cores)
LEARNING_RATE = 2e-3  # the from-scratch rate of train.py: the pruned network has much to relearn (BENCHMARKS.md)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(node: onnx.NodeProto, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    a = _attrs(node)
    top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
    if (top, left) != (bottom, right):
        x, top, left = F.pad(x, (left, right, top, bottom)), 0, 0
    return F.conv2d(x, w, b, a.get("strides", [1, 1]), (top, left), a.get("dilations", [1, 1]), a.get("group", 1))


def _depth_to_space(node: onnx.NodeProto, x: torch.Tensor) -> torch.Tensor:
    a = _attrs(node)
    block, mode = a["blocksize"], a.get("mode", b"DCR")
    if mode in (b"CRD", "CRD"):
        return F.pixel_shuffle(x, block)
    n, c, h, w = x.shape
    x = x.reshape(n, block, block, c // block**2, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c // block**2, h * block, w * block)


def _reshape(node: onnx.NodeProto, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    dims = [int(d) for d in shape.tolist()]
    return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(dims)])


def _gemm(node: onnx.NodeProto, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    a = _attrs(node)
    y = x @ (w.T if a.get("transB", 0) else w)
    return y + b if b is not None else y


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "Clip": lambda node, x, low=None, high=None: torch.clamp(x, low, high),
    "Relu": lambda node, x: F.relu(x),
    "Add": lambda node, a, b: a + b,
    "Mul": lambda node, a, b: a * b,
    "MatMul": lambda node, a, b: a @ b,
    "Softmax": lambda node, x: torch.softmax(x, dim=_attrs(node).get("axis", -1)),
    "Reshape": _reshape,
    "DepthToSpace": _depth_to_space,
    "Flatten": lambda node, x: torch.flatten(x, _attrs(node).get("axis", 1)),
    "GlobalAveragePool": lambda node, x: x.mean(dim=(2, 3), keepdim=True),
}


class OnnxNet(nn.Module):
    """An ONNX graph run by torch, node by node; the weights and biases of convolutions and Gemms train."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        self.nodes = list(model.graph.node)
        unknown = sorted({n.op_type for n in self.nodes} - set(OPS))
        if unknown:
            raise ValueError(f"this example's interpreter has no {', '.join(unknown)}: add them to OPS")
        trainable = {n.input[k] for n in self.nodes if n.op_type in ("Conv", "Gemm") for k in (1, 2) if len(n.input) > k}
        self.weights = nn.ParameterDict()
        self.names: dict[str, str] = {}  # initializer name -> parameter key (ParameterDict keys cannot hold dots)
        self.constants: dict[str, torch.Tensor] = {}
        for init in model.graph.initializer:
            value = torch.from_numpy(numpy_helper.to_array(init).copy())
            if init.name in trainable and value.is_floating_point():
                self.names[init.name] = key = f"w{len(self.names)}"
                self.weights[key] = nn.Parameter(value)
            else:
                self.constants[init.name] = value
        known = set(self.constants) | set(self.names)
        self.input = next(i.name for i in model.graph.input if i.name not in known)
        self.outputs = [o.name for o in model.graph.output]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        env: dict[str, torch.Tensor] = {self.input: x}
        for node in self.nodes:
            args = [self._value(env, name) if name else None for name in node.input]
            env[node.output[0]] = OPS[node.op_type](node, *args)
        return {name: env[name] for name in self.outputs}

    def _value(self, env: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        if name in env:
            return env[name]
        return self.weights[self.names[name]] if name in self.names else self.constants[name]

    def write_back(self, model: onnx.ModelProto) -> None:
        """The trained values into `model`'s initializers (same names, shapes and types)."""
        for init in model.graph.initializer:
            if init.name in self.names:
                value = self.weights[self.names[init.name]].detach().numpy().astype(numpy_helper.to_array(init).dtype)
                init.CopyFrom(numpy_helper.from_array(value, init.name))


@functools.lru_cache(maxsize=1)
def training_set(count: int = TRAIN_SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, keypoints, target heatmaps) of the generator's training seed, made once per process."""
    images, keypoints = make_pose_dataset(count, TRAIN_SEED, SIZE)
    return torch.from_numpy(images), torch.from_numpy(keypoints), torch.from_numpy(gaussian_heatmaps(keypoints, HEATMAP))


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Jensen-Shannon divergence over the last two axes (the DSNT regulariser of train.py)."""
    m = 0.5 * (p + q)
    kl_pm = (p * (torch.log(p + eps) - torch.log(m + eps))).sum(dim=(-2, -1))
    kl_qm = (q * (torch.log(q + eps) - torch.log(m + eps))).sum(dim=(-2, -1))
    return 0.5 * kl_pm + 0.5 * kl_qm


def finetune(model_path: str, data: object, steps: int, seed: int = 0, lr: float = LEARNING_RATE) -> str:
    """The hook: train the pruned model at `model_path` for `steps` steps; returns the fine-tuned model's path."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = onnx.load(model_path)
    net = OnnxNet(model)
    dims = next(i for i in model.graph.input if i.name == net.input).type.tensor_type.shape.dim
    batch = dims[0].dim_value or 32  # the model's batch size when it is fixed (the explorer's evaluation batch)
    images, keypoints, targets = training_set(TRAIN_SIZE)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    net.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(images), batch))
        out = net(images[idx])
        euclid = torch.linalg.vector_norm(out["coords"] - keypoints[idx], dim=-1).mean()
        loss = euclid + js_divergence(out["heatmaps"], targets[idx]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    net.write_back(model)
    out_path = Path(model_path).with_name(Path(model_path).stem + ".finetuned.onnx")
    onnx.save(model, str(out_path))
    return str(out_path)
