"""Make the real-export fixtures in this folder: small timm and Ultralytics-style networks exported by
`torch.onnx.export`, both with the TorchScript exporter and with the dynamo exporter (issue #13).

The tests read the ONNX files; only this script needs torch. Random weights (seeded), no downloads:

    pip install torch==2.13.0 onnxscript      # the CPU build lies on this workplace's disk
    pip install --no-deps timm huggingface_hub safetensors
    python tests/data/models/generate.py

timm imports torchvision at module level for its data pipeline and for FrozenBatchNorm2d, and PyPI's
torchvision does not load beside the CPU torch here; none of the models below use it, so this script
answers `import torchvision...` with empty placeholder modules for the duration of the run. Ultralytics
needs torchvision for real, so its C2f block, SPPF and detection head are written out below as
Ultralytics defines them (chunk -> Split, SiLU, nearest upsampling, concat).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent
SIZE = 64  # input height and width


class _Placeholder(types.ModuleType):
    """A stand-in for a torchvision module: every attribute is a class (an nn.Module subclass)."""

    __path__: ClassVar[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        import torch

        class _Meta(type(torch.nn.Module)):  # type: ignore[misc]
            def __getattr__(cls, attr: str) -> str:  # enum members such as InterpolationMode.NEAREST
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return f"{name}.{attr}"

        value = _Meta(name, (torch.nn.Module,), {})
        setattr(self, name, value)
        return value


class _NoTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _Placeholder(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def _randomize(model: Any, seed: int) -> Any:
    """Seeded random weights on seven levels (-3..3 steps of half their spread: the files compress about tenfold
    in git, yet every channel computes something), and BatchNorm statistics that are not the identity."""
    import torch

    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            w = module.weight.data
            step = float(w.std()) / 2 or 1.0
            w.copy_(torch.clamp(torch.round(w / step), -3, 3) * step)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def mobilenetv3() -> Any:
    """timm `mobilenetv3_small_050` (HardSwish, HardSigmoid squeeze-excite) with a 64-wide head."""
    import timm
    import torch

    model = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10)
    model.conv_head = torch.nn.Conv2d(model.conv_head.in_channels, 64, 1)
    model.classifier = torch.nn.Linear(64, 10)
    return model


def densenet() -> Any:
    """timm DenseNet (pre-activation: BatchNorm -> ReLU -> Conv) at growth rate 8."""
    from timm.models.densenet import DenseNet

    return DenseNet(growth_rate=8, block_config=(2, 2, 2), num_classes=10)


def efficientnet() -> Any:
    """timm EfficientNet-B0 at a quarter of its width and depth (SiLU, Sigmoid squeeze-excite)."""
    from timm.models.efficientnet import _gen_efficientnet

    return _gen_efficientnet("efficientnet_b0", channel_multiplier=0.25, depth_multiplier=0.25, num_classes=10)


def yolo() -> Any:
    """A YOLOv8-style detector at 1/16 width: C2f blocks (`chunk`), SPPF, nearest upsampling, and the
    Detect head's box/class branches with the reshape/concat/sigmoid tail (Ultralytics' definitions)."""
    import torch
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
            self.bn = nn.BatchNorm2d(c2)
            self.act = nn.SiLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.bn(self.conv(x)))

    class Bottleneck(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.cv1, self.cv2 = Conv(c, c, 3), Conv(c, c, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.cv2(self.cv1(x))

    class C2f(nn.Module):
        def __init__(self, c1: int, c2: int, n: int = 1) -> None:
            super().__init__()
            self.c = c2 // 2
            self.cv1 = Conv(c1, 2 * self.c, 1)
            self.cv2 = Conv((2 + n) * self.c, c2, 1)
            self.m = nn.ModuleList(Bottleneck(self.c) for _ in range(n))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = list(self.cv1(x).chunk(2, 1))
            y.extend(m(y[-1]) for m in self.m)
            return self.cv2(torch.cat(y, 1))

    class SPPF(nn.Module):
        def __init__(self, c1: int, c2: int) -> None:
            super().__init__()
            self.cv1, self.cv2 = Conv(c1, c1 // 2, 1), Conv(c1 // 2 * 4, c2, 1)
            self.m = nn.MaxPool2d(5, 1, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = [self.cv1(x)]
            y.extend(self.m(y[-1]) for _ in range(3))
            return self.cv2(torch.cat(y, 1))

    class Detect(nn.Module):
        def __init__(self, channels: tuple[int, ...], classes: int = 4, reg_max: int = 4) -> None:
            super().__init__()
            self.no = classes + 4 * reg_max
            self.box = nn.ModuleList(nn.Sequential(Conv(c, 16, 3), nn.Conv2d(16, 4 * reg_max, 1)) for c in channels)
            self.cls = nn.ModuleList(nn.Sequential(Conv(c, 16, 3), nn.Conv2d(16, classes, 1)) for c in channels)
            self.split = 4 * reg_max

        def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
            levels = [
                torch.cat((b(x), c(x)), 1).view(x.shape[0], self.no, -1) for x, b, c in zip(xs, self.box, self.cls, strict=True)
            ]
            y = torch.cat(levels, 2)
            box, cls = y.split((self.split, self.no - self.split), 1)
            return torch.cat((box, cls.sigmoid()), 1)

    class TinyYolo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(Conv(3, 8, 3, 2), Conv(8, 16, 3, 2), C2f(16, 16), Conv(16, 32, 3, 2))
            self.p4 = C2f(32, 32)
            self.p5 = nn.Sequential(Conv(32, 64, 3, 2), C2f(64, 64), SPPF(64, 64))
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.neck = C2f(96, 32)
            self.detect = Detect((32, 64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p4 = self.p4(self.stem(x))
            p5 = self.p5(p4)
            n4 = self.neck(torch.cat((self.up(p5), p4), 1))
            return self.detect([n4, p5])

    return TinyYolo()


MODELS: dict[str, Callable[[], Any]] = {
    "mobilenetv3": mobilenetv3,
    "densenet": densenet,
    "efficientnet": efficientnet,
    "yolov8": yolo,
}


def export(name: str, make: Callable[[], Any], seed: int) -> None:
    import onnx
    import torch

    model = _randomize(make(), seed)
    x = torch.zeros(1, 3, SIZE, SIZE)
    torchscript = HERE / f"{name}_torchscript.onnx"
    torch.onnx.export(
        model, (x,), str(torchscript), dynamo=False, opset_version=17, input_names=["input"], output_names=["output"]
    )
    dynamo = HERE / f"{name}_dynamo.onnx"
    program = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"], output_names=["output"])
    program.save(str(dynamo), external_data=False)
    for path in (torchscript, dynamo):
        onnx.checker.check_model(onnx.load(str(path)))
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


def main() -> None:
    sys.meta_path.insert(0, _NoTorchvision())
    for seed, (name, make) in enumerate(MODELS.items()):
        export(name, make, seed)


if __name__ == "__main__":
    main()
