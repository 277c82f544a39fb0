"""Reference architectures for tests and benchmarks, written with onnx.helper (random seeded weights).

The architectures follow their papers' layer plans; they are for shapes, operation counts and graph
structure, not for accuracy. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


class NetBuilder:
    """Builds an NCHW ONNX graph layer by layer, tracking shapes so weights can be sized."""

    def __init__(self, name: str, input_shape: Sequence[int] = (1, 3, 224, 224), seed: int = 0, opset: int = OPSET) -> None:
        self.opset = opset
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shape: dict[str, tuple[int, ...]] = {"input": tuple(input_shape)}
        self.input_shape = tuple(input_shape)
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def _const(self, prefix: str, array: np.ndarray) -> str:
        name = self._name(prefix)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def _node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs: Any) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        self.shape[out] = shape
        return out

    def act(self, x: str, kind: str | None) -> str:
        if kind is None:
            return x
        if kind == "relu":
            return self._node("Relu", [x], self.shape[x])
        if kind == "relu6":
            lo = self._const("clip_min", np.array(0.0, dtype=np.float32))
            hi = self._const("clip_max", np.array(6.0, dtype=np.float32))
            return self._node("Clip", [x, lo, hi], self.shape[x])
        if kind == "leaky":
            return self._node("LeakyRelu", [x], self.shape[x], alpha=0.1)
        if kind == "sigmoid":
            return self._node("Sigmoid", [x], self.shape[x])
        raise ValueError(kind)

    def conv(
        self,
        x: str,
        out_ch: int,
        k: int | tuple[int, int] = 3,
        s: int = 1,
        p: int | tuple[int, int] | None = None,
        groups: int = 1,
        dilation: int = 1,
        act: str | None = "relu",
        bn: bool = False,
    ) -> str:
        n, c, h, w = self.shape[x]
        kh, kw = (k, k) if isinstance(k, int) else k
        ph, pw = ((kh - 1) // 2 * dilation, (kw - 1) // 2 * dilation) if p is None else ((p, p) if isinstance(p, int) else p)
        fan_in = c // groups * kh * kw
        weight = (self.rng.standard_normal((out_ch, c // groups, kh, kw), dtype=np.float32) * math.sqrt(2.0 / fan_in)).astype(
            np.float32
        )
        inputs = [x, self._const("W", weight)]
        if not bn:
            inputs.append(self._const("B", (self.rng.standard_normal(out_ch, dtype=np.float32) * 0.01).astype(np.float32)))
        oh = (h + 2 * ph - dilation * (kh - 1) - 1) // s + 1
        ow = (w + 2 * pw - dilation * (kw - 1) - 1) // s + 1
        y = self._node(
            "Conv",
            inputs,
            (n, out_ch, oh, ow),
            kernel_shape=[kh, kw],
            strides=[s, s],
            pads=[ph, pw, ph, pw],
            dilations=[dilation, dilation],
            group=groups,
        )
        if bn:
            y = self.batchnorm(y)
        return self.act(y, act)

    def batchnorm(self, x: str) -> str:
        c = self.shape[x][1]
        scale = (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)
        bias = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        mean = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
        var = (1.0 + 0.1 * np.abs(self.rng.standard_normal(c))).astype(np.float32)
        inputs = [x] + [
            self._const(p, a) for p, a in (("bn_scale", scale), ("bn_bias", bias), ("bn_mean", mean), ("bn_var", var))
        ]
        return self._node("BatchNormalization", inputs, self.shape[x], epsilon=1e-5)

    def dwconv(self, x: str, k: int = 3, s: int = 1, act: str | None = "relu6", bn: bool = False) -> str:
        return self.conv(x, self.shape[x][1], k=k, s=s, groups=self.shape[x][1], act=act, bn=bn)

    def deconv(self, x: str, out_ch: int, k: int = 4, s: int = 2, p: int = 1, act: str | None = "relu") -> str:
        n, c, h, w = self.shape[x]
        weight = (self.rng.standard_normal((c, out_ch, k, k), dtype=np.float32) * math.sqrt(2.0 / (c * k * k))).astype(np.float32)
        oh, ow = (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k
        y = self._node(
            "ConvTranspose",
            [x, self._const("W", weight)],
            (n, out_ch, oh, ow),
            kernel_shape=[k, k],
            strides=[s, s],
            pads=[p, p, p, p],
        )
        return self.act(y, act)

    def maxpool(self, x: str, k: int = 2, s: int | None = None, p: int = 0, ceil: bool = False) -> str:
        n, c, h, w = self.shape[x]
        s = s or k
        rnd = math.ceil if ceil else math.floor
        oh, ow = rnd((h + 2 * p - k) / s) + 1, rnd((w + 2 * p - k) / s) + 1
        return self._node(
            "MaxPool", [x], (n, c, oh, ow), kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], ceil_mode=int(ceil)
        )

    def avgpool(self, x: str, k: int = 2, s: int | None = None, p: int = 0) -> str:
        n, c, h, w = self.shape[x]
        s = s or k
        return self._node(
            "AveragePool",
            [x],
            (n, c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1),
            kernel_shape=[k, k],
            strides=[s, s],
            pads=[p, p, p, p],
        )

    def global_avgpool(self, x: str) -> str:
        n, c, _, _ = self.shape[x]
        return self._node("GlobalAveragePool", [x], (n, c, 1, 1))

    def add(self, a: str, b: str, act: str | None = None) -> str:
        return self.act(self._node("Add", [a, b], self.shape[a]), act)

    def mul(self, a: str, b: str) -> str:
        return self._node("Mul", [a, b], self.shape[a])

    def concat(self, xs: Sequence[str]) -> str:
        n, _, h, w = self.shape[xs[0]]
        return self._node("Concat", list(xs), (n, sum(self.shape[x][1] for x in xs), h, w), axis=1)

    def upsample(self, x: str, scale: int = 2, mode: str = "nearest") -> str:
        n, c, h, w = self.shape[x]
        scales = self._const("scales", np.array([1, 1, scale, scale], dtype=np.float32))
        return self._node("Resize", [x, "", scales], (n, c, h * scale, w * scale), mode=mode)

    def depth_to_space(self, x: str, block: int = 2) -> str:
        n, c, h, w = self.shape[x]
        return self._node("DepthToSpace", [x], (n, c // (block * block), h * block, w * block), blocksize=block, mode="CRD")

    def flatten(self, x: str) -> str:
        n = self.shape[x][0]
        return self._node("Flatten", [x], (n, int(np.prod(self.shape[x][1:]))), axis=1)

    def fc(self, x: str, out_f: int, act: str | None = None) -> str:
        n, in_f = self.shape[x]
        weight = (self.rng.standard_normal((out_f, in_f), dtype=np.float32) * math.sqrt(1.0 / in_f)).astype(np.float32)
        bias = np.zeros(out_f, dtype=np.float32)
        y = self._node("Gemm", [x, self._const("W", weight), self._const("B", bias)], (n, out_f), transB=1)
        return self.act(y, act)

    def softmax(self, x: str, axis: int = -1) -> str:
        return self._node("Softmax", [x], self.shape[x], axis=axis)

    def build(self, outputs: Sequence[str]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(self.input_shape))],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(self.shape[o])) for o in outputs],
            initializer=self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="dpu-explorer.zoo")
        model.ir_version = 8
        return model


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def resnet50(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = NetBuilder("resnet50", (1, 3, size, size), seed)
    x = b.conv("input", 64, k=7, s=2, bn=True)
    x = b.maxpool(x, k=3, s=2, p=1)
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for i in range(blocks):
            stride = 2 if i == 0 and stage > 0 else 1
            y = b.conv(x, width, k=1, s=stride, bn=True)  # ResNet-50 v1 (Caffe): stride in the first 1x1, 7.7 GOP
            y = b.conv(y, width, k=3, bn=True)
            y = b.conv(y, width * 4, k=1, act=None, bn=True)
            shortcut = b.conv(x, width * 4, k=1, s=stride, act=None, bn=True) if i == 0 else x
            x = b.add(y, shortcut, act="relu")
    x = b.flatten(b.global_avgpool(x))
    return b.build([b.fc(x, classes)])


def mobilenet_v2_features(
    b: NetBuilder, x: str, width: float = 1.0, blocks: int | None = None, max_filters: int | None = None
) -> list[str]:
    """The MobileNetV2 backbone; returns the output of every stage (for heads that tap several scales)."""
    plan = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    x = b.conv(x, _make_divisible(32 * width), k=3, s=2, act="relu6", bn=True)
    taps: list[str] = []
    done = 0
    for t, c, n, s in plan:
        out_ch = _make_divisible(c * width)
        for i in range(n):
            if blocks is not None and done >= blocks:
                return taps
            inp = x
            hidden = b.shape[x][1] * t if max_filters is None else min(b.shape[x][1] * t, max_filters)
            y = b.conv(x, hidden, k=1, act="relu6", bn=True) if t != 1 else x
            y = b.dwconv(y, s=s if i == 0 else 1, bn=True)
            y = b.conv(y, out_ch, k=1, act=None, bn=True)
            x = b.add(y, inp) if (i > 0 or s == 1) and b.shape[inp] == b.shape[y] else y
            done += 1
        taps.append(x)
    return taps


def mobilenet_v2(size: int = 224, width: float = 1.0, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = NetBuilder("mobilenet_v2", (1, 3, size, size), seed)
    x = mobilenet_v2_features(b, "input", width)[-1]
    x = b.conv(x, _make_divisible(1280 * max(1.0, width)), k=1, act="relu6", bn=True)
    x = b.flatten(b.global_avgpool(x))
    return b.build([b.fc(x, classes)])


def inception_v1(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = NetBuilder("inception_v1", (1, 3, size, size), seed)
    x = b.conv("input", 64, k=7, s=2)
    x = b.maxpool(x, k=3, s=2, ceil=True)
    x = b.conv(x, 64, k=1)
    x = b.conv(x, 192, k=3)
    x = b.maxpool(x, k=3, s=2, ceil=True)

    def module(x: str, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int) -> str:
        a = b.conv(x, c1, k=1)
        c = b.conv(b.conv(x, c3r, k=1), c3, k=3)
        d = b.conv(b.conv(x, c5r, k=1), c5, k=5)
        e = b.conv(b.maxpool(x, k=3, s=1, p=1), pp, k=1)
        return b.concat([a, c, d, e])

    x = module(x, 64, 96, 128, 16, 32, 32)
    x = module(x, 128, 128, 192, 32, 96, 64)
    x = b.maxpool(x, k=3, s=2, ceil=True)
    for spec in [
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ]:
        x = module(x, *spec)
    x = b.maxpool(x, k=3, s=2, ceil=True)
    x = module(x, 256, 160, 320, 32, 128, 128)
    x = module(x, 384, 192, 384, 48, 128, 128)
    x = b.flatten(b.global_avgpool(x))
    return b.build([b.fc(x, classes)])


def squeezenet(size: int = 227, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """SqueezeNet 1.1 (the variant in the ncnn benchmark)."""
    b = NetBuilder("squeezenet", (1, 3, size, size), seed)
    x = b.conv("input", 64, k=3, s=2, p=0)
    x = b.maxpool(x, k=3, s=2, ceil=True)

    def fire(x: str, s: int, e: int) -> str:
        sq = b.conv(x, s, k=1)
        return b.concat([b.conv(sq, e, k=1), b.conv(sq, e, k=3)])

    x = fire(fire(x, 16, 64), 16, 64)
    x = b.maxpool(x, k=3, s=2, ceil=True)
    x = fire(fire(x, 32, 128), 32, 128)
    x = b.maxpool(x, k=3, s=2, ceil=True)
    for s, e in [(48, 192), (48, 192), (64, 256), (64, 256)]:
        x = fire(x, s, e)
    x = b.conv(x, classes, k=1)
    return b.build([b.flatten(b.global_avgpool(x))])


def yolov3(width: int = 416, height: int | None = None, classes: int = 20, scale: float = 1.0, seed: int = 0) -> onnx.ModelProto:
    """YOLOv3 (Darknet-53 backbone, three detection scales); `scale` shrinks every width (pruned variants)."""
    height = height or width
    b = NetBuilder("yolov3", (1, 3, height, width), seed)

    def ch(c: int) -> int:
        return max(8, _make_divisible(c * scale, 8))

    def cbl(x: str, c: int, k: int = 3, s: int = 1) -> str:
        return b.conv(x, ch(c), k=k, s=s, act="leaky", bn=True)

    x = cbl("input", 32)
    routes = []
    for c, n in [(64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)]:
        x = cbl(x, c, s=2)
        for _ in range(n):
            x = b.add(x, cbl(cbl(x, c // 2, k=1), c))
        routes.append(x)
    outputs = []
    x = routes[-1]
    for i, c in enumerate([512, 256, 128]):
        if i:
            x = b.concat([b.upsample(cbl(x, c, k=1)), routes[-1 - i]])
        for _ in range(2):
            x = cbl(cbl(x, c, k=1), c * 2)
        x = cbl(x, c, k=1)
        outputs.append(b.conv(cbl(x, c * 2), 3 * (5 + classes), k=1, act=None))
    return b.build(outputs)


def ssd_mobilenet_v2(width: int = 480, height: int = 360, classes: int = 11, head: int = 256, seed: int = 0) -> onnx.ModelProto:
    """SSD with a MobileNetV2 backbone and full 3x3 convolution heads on six scales."""
    b = NetBuilder("ssd_mobilenet_v2", (1, 3, height, width), seed)
    taps = mobilenet_v2_features(b, "input")
    feats = [taps[3], b.conv(taps[-1], 1280, k=1, act="relu6", bn=True)]
    x = feats[-1]
    for c in (512, 256, 256, 128):
        x = b.conv(b.conv(x, c // 2, k=1, act="relu6", bn=True), c, k=3, s=2, act="relu6", bn=True)
        feats.append(x)
    outputs = []
    for f in feats:
        h = b.conv(f, head, k=3, act="relu", bn=True)
        outputs += [b.conv(h, 6 * classes, k=3, act=None), b.conv(h, 6 * 4, k=3, act=None)]
    return b.build(outputs)


def mobilenet_v2_ssd_seed002(size: int = 1024, seed: int = 0) -> onnx.ModelProto:
    """Seed 002's logo detector, built from what the seed states: 12 MobileNetV2 blocks, at most 512
    filters per layer, SSD heads on six scales, 1024x1024 input, about 880,000 parameters (this one has
    ~0.89 M). The seed gives no channel plan: the blocks use MobileNetV2's plan at width 1.0 with the
    expansion capped at 512 filters; two extra stride-2 layers give the last scales.
    """
    b = NetBuilder("mobilenet_v2_ssd_seed002", (1, 3, size, size), seed)
    taps = mobilenet_v2_features(b, "input", width=1.0, blocks=12, max_filters=512)
    x = taps[-1]
    feats = taps[1:]
    while len(feats) < 6:
        x = b.conv(b.conv(x, 64, k=1, act="relu6", bn=True), 128, k=3, s=2, act="relu6", bn=True)
        feats.append(x)
    outputs = []
    for f in feats[:6]:
        outputs += [b.conv(f, 6 * 2, k=3, act=None), b.conv(f, 6 * 4, k=3, act=None)]
    return b.build(outputs)


REFERENCE_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    # PG338 Table 13 lists MobileNet_v2 at 299x299 with 0.6 GOP: a 0.75-width network matches both.
    "mobilenet_v2_299": lambda: mobilenet_v2(size=299, width=0.75),
    "inception_v1": inception_v1,
    "squeezenet": squeezenet,
    "yolov3_voc": yolov3,
    # Pruned YOLOv3-ADAS, 512x256, 5.46 GOP: uniform width scale as a stand-in for the unpublished pruning.
    "yolov3_adas_pruned": lambda: yolov3(width=512, height=256, classes=3, scale=0.32),
    "ssd_mobilenet_v2": ssd_mobilenet_v2,
    "mobilenet_v2_ssd_seed002": mobilenet_v2_ssd_seed002,
}
