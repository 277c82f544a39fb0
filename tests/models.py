"""Small models for tests, built with the project's NetBuilder (seeded random weights)."""

from __future__ import annotations

import onnx

from reference.zoo import NetBuilder


def tiny_resnet(size: int = 32) -> onnx.ModelProto:
    """Convs with BatchNorm and a skip connection over two convolutions."""
    b = NetBuilder("tiny_resnet", (1, 3, size, size), seed=1)
    x = b.conv("input", 16, k=3, s=2, bn=True)
    y = b.conv(x, 16, k=3, bn=True)
    y = b.conv(y, 16, k=3, act=None, bn=True)
    x = b.add(x, y, act="relu")
    x = b.conv(x, 32, k=3, s=2, bn=True)
    x = b.flatten(b.global_avgpool(x))
    return b.build([b.fc(x, 10)])


def unsupported_middle(size: int = 16) -> onnx.ModelProto:
    """A Sigmoid (not a DPU operator) between convolutions, and a skip connection around it."""
    b = NetBuilder("unsupported_middle", (1, 3, size, size), seed=2)
    x = b.conv("input", 8, k=3)
    s = b.act(b.conv(x, 8, k=1, act=None), "sigmoid")
    y = b.conv(s, 8, k=3)
    z = b.add(x, y)
    return b.build([b.conv(z, 4, k=1, act=None)])


def branches(size: int = 16) -> onnx.ModelProto:
    """Inception-style parallel branches joined by Concat, then upsampling and a softmax."""
    b = NetBuilder("branches", (1, 3, size, size), seed=3)
    x = b.conv("input", 8, k=3)
    a = b.conv(x, 8, k=1)
    c = b.conv(b.conv(x, 4, k=1), 8, k=3)
    d = b.conv(b.maxpool(x, k=3, s=1, p=1), 8, k=1)
    x = b.concat([a, c, d])
    x = b.upsample(b.conv(x, 16, k=1, s=2), 2)
    return b.build([b.softmax(b.conv(x, 5, k=1, act=None), axis=1)])
