"""Train the bundled example: a MobilePose-style pose network on the procedural pose dataset.

Architecture (seeds 000/001): MobileNetV2 backbone (width multiplier) to output stride 16, two dense
upsampling convolution (DUC) stages (3x3 conv + pixel shuffle), a 1x1 convolution to 16 heatmaps (MPII
joints) and a DSNT head: a spatial softmax per joint, whose expectation over a coordinate grid gives the
joint's normalised (x, y). Loss: Euclidean distance plus the DSNT paper's Jensen-Shannon regulariser
towards a Gaussian heatmap. Exported as ONNX (opset 13) with outputs `heatmaps` and `coords`.

Needs torch (the optional extra: pip install -e '.[train]' or pip install torch==2.13.0, CPU build).
Run:  python examples/pose/train.py --steps 3000 --out examples/pose/mobilepose_dsnt.onnx
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.data.pose_synth import EVALUATION_SEED, TRAIN_SEED, make_pose_dataset
from explorer.evaluators.pose import gaussian_heatmaps, pose_metrics

SIZE, HEATMAP, JOINTS = 96, 24, 16


def divisible(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU6):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [] if expand == 1 else [ConvBN(cin, hidden, 1)]
        layers += [ConvBN(hidden, hidden, 3, stride, groups=hidden), ConvBN(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class DUC(nn.Sequential):
    """Dense upsampling convolution: conv to 4x channels, then a 2x pixel shuffle (ONNX DepthToSpace)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvBN(cin, 4 * cout, 3, act=nn.ReLU), nn.PixelShuffle(2))


class MobilePoseDSNT(nn.Module):
    def __init__(self, width: float = 0.5, joints: int = JOINTS, heatmap: int = HEATMAP) -> None:
        super().__init__()
        plan = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]  # to output stride 16
        cin = divisible(32 * width)
        layers: list[nn.Module] = [ConvBN(3, cin, 3, 2)]
        for t, c, n, s in plan:
            cout = divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.backbone = nn.Sequential(*layers)
        self.duc = nn.Sequential(DUC(cin, 32), DUC(32, 16))
        self.head = nn.Conv2d(16, joints, 1)
        coords = (2 * torch.arange(heatmap, dtype=torch.float32) + 1) / heatmap - 1
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        self.register_buffer("grid", torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))  # (H*W, 2)
        self.heatmap = heatmap

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.duc(self.backbone(x)))
        n, j = logits.shape[:2]
        probs = torch.softmax(logits.reshape(n, j, -1), dim=-1)
        coords = probs @ self.grid
        return probs.reshape(n, j, self.heatmap, self.heatmap), coords


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    m = 0.5 * (p + q)
    kl = lambda a, b: (a * (torch.log(a + eps) - torch.log(b + eps))).sum(dim=(-2, -1))  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("mobilepose_dsnt.onnx")))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    images, keypoints = make_pose_dataset(args.train_size, TRAIN_SEED, SIZE)
    eval_images, eval_keypoints = make_pose_dataset(300, EVALUATION_SEED, SIZE)
    print(f"generated {args.train_size} training images in {time.time() - start:.1f} s", flush=True)
    targets = torch.from_numpy(gaussian_heatmaps(keypoints, HEATMAP))
    x_all, k_all = torch.from_numpy(images), torch.from_numpy(keypoints)
    model = MobilePoseDSNT(args.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))
    )
    log = []
    for step in range(1, args.steps + 1):
        idx = torch.from_numpy(rng.integers(0, args.train_size, args.batch))
        heat, coords = model(x_all[idx])
        euclid = torch.linalg.vector_norm(coords - k_all[idx], dim=-1).mean()
        loss = euclid + js_divergence(heat, targets[idx]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                heat_e, coords_e = model(torch.from_numpy(eval_images))
            model.train()
            metrics = pose_metrics(coords_e.numpy(), eval_keypoints, heat_e.numpy())
            entry = {
                "step": step,
                "seconds": round(time.time() - start, 1),
                "loss": round(float(loss.detach()), 4),
                **{k: round(v, 4) for k, v in metrics.items()},
            }
            log.append(entry)
            print(json.dumps(entry), flush=True)
    model.eval()
    out = Path(args.out)
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, SIZE, SIZE),),
        str(out),
        opset_version=13,
        input_names=["input"],
        output_names=["heatmaps", "coords"],
        dynamic_axes={"input": {0: "batch"}, "heatmaps": {0: "batch"}, "coords": {0: "batch"}},
        dynamo=False,
    )
    torch.save(model.state_dict(), out.with_suffix(".pt"))
    out.with_suffix(".train.json").write_text(json.dumps({"args": vars(args), "log": log}, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
