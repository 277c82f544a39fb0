"""Every published fingerprint / target pair of docs/hardware.md §1.6-1.7, and decode round trips."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from explorer.hardware.config import DpuConfig, resolve
from explorer.hardware.fingerprint import arch_json, decode_fingerprint, feature_code, fingerprint, target_name

ISA0_ARCHS = ["B4096", "B3136", "B2304", "B1600", "B1152", "B1024", "B800", "B512"]
# VAI@v2.0 targets/DPUCZDX8G_ISA0_*.prototxt feature codes.
ISA0_REGISTERED = {
    ("B4096", "MAX"): 0x0020F7014407,
    ("B4096", "MAX_BG2"): 0x0020F6014407,
    ("B4096", "MAX_EM"): 0x0030F7014407,
    ("B4096", "MIN"): 0x002022010107,
    ("B3136", "MAX"): 0x0020F7014406,
    ("B3136", "MAX_BG2"): 0x0020F6014406,
    ("B3136", "MIN"): 0x002022010106,
    ("B2304", "MAX"): 0x0020F7014405,
    ("B2304", "MAX_BG2"): 0x0020F6014405,
    ("B2304", "MIN"): 0x002022010105,
    ("B1600", "MAX"): 0x0020F7014404,
    ("B1600", "MIN"): 0x002022010104,
    ("B1152", "MAX"): 0x0020F7012203,
    ("B1152", "MIN"): 0x002022010103,
    ("B1024", "MAX"): 0x0020F7014402,
    ("B1024", "MIN"): 0x002022010102,
    ("B800", "MAX"): 0x0020F7012201,
    ("B800", "MIN"): 0x002022010101,
    ("B512", "MAX"): 0x0020F7012200,
    ("B512", "MIN"): 0x002022010100,
}
# dpu_settings/<name>.vh of each registered name.
ISA0_SETTINGS: dict[str, dict[str, object]] = {
    "MAX": dict(
        ram_usage="high",
        channel_augmentation=True,
        depthwise=True,
        avg_pool=True,
        elew_mult=False,
        relu_type="relu_leakyrelu_relu6",
    ),
    "MAX_BG2": dict(
        ram_usage="low",
        channel_augmentation=True,
        depthwise=True,
        avg_pool=True,
        elew_mult=False,
        relu_type="relu_leakyrelu_relu6",
    ),
    "MAX_EM": dict(
        ram_usage="high",
        channel_augmentation=True,
        depthwise=True,
        avg_pool=True,
        elew_mult=True,
        relu_type="relu_leakyrelu_relu6",
    ),
    "MIN": dict(
        ram_usage="low", channel_augmentation=False, depthwise=False, avg_pool=False, elew_mult=False, relu_type="relu_relu6"
    ),
}
ISA1_ARCHS = {
    "B512": 0x200,
    "B800": 0x201,
    "B1024": 0x402,
    "B1152": 0x203,
    "B1600": 0x404,
    "B2304": 0x405,
    "B3136": 0x406,
    "B4096": 0x407,
}


def isa0(arch: str, setting: str, version: str = "3.4") -> DpuConfig:
    return DpuConfig(arch=arch, ip_version=version, save_argmax=False, **ISA0_SETTINGS[setting])  # type: ignore[arg-type]


@pytest.mark.parametrize(("arch", "setting"), list(ISA0_REGISTERED))
def test_isa0_registered_targets(arch: str, setting: str) -> None:
    cfg = isa0(arch, setting)
    assert feature_code(resolve(cfg)) == ISA0_REGISTERED[(arch, setting)]
    assert fingerprint(resolve(cfg)) == 0x0100_0000_0000_0000 | ISA0_REGISTERED[(arch, setting)]
    assert target_name(resolve(cfg)) == f"DPUCZDX8G_ISA0_{arch}_{setting}"


def test_isa0_issue_444_full_fingerprint() -> None:
    assert fingerprint(resolve(isa0("B1024", "MAX"))) == 0x1000020F7014402


def test_isa0_unregistered_b512_bg2_gets_decoded_name() -> None:
    cfg = isa0("B512", "MAX_BG2")
    assert target_name(resolve(cfg)) == f"DPUCZDX8G_ISA0_B512_{fingerprint(resolve(cfg)):016X}"


@pytest.mark.parametrize(("arch", "code"), list(ISA1_ARCHS.items()))
def test_isa1_registered_vai25_and_vai3(arch: str, code: int) -> None:
    vai25 = DpuConfig(arch=arch, ip_version="4.0", save_argmax=False)
    vai3 = DpuConfig(arch=arch, ip_version="4.1", save_argmax=True)
    assert feature_code(resolve(vai25)) == 0x000016010000 | code
    assert feature_code(resolve(vai3)) == 0x000056010000 | code
    assert target_name(resolve(vai25)) == target_name(resolve(vai3)) == f"DPUCZDX8G_ISA1_{arch}"


def test_isa1_b4096_full_fingerprints() -> None:
    assert fingerprint(resolve(DpuConfig(arch="B4096", ip_version="4.0", save_argmax=False))) == 0x0101000016010407
    assert fingerprint(resolve(DpuConfig(arch="B4096", ip_version="4.1"))) == 0x0101000056010407


# docs/hardware.md §1.7: published board deployments.
@pytest.mark.parametrize(
    ("config", "expected", "name"),
    [
        # ZCU102/ZCU104 docker target, VAI 1.3-2.0
        (
            DpuConfig(arch="B4096", ip_version="3.4", ram_usage="low", save_argmax=False, elew_mult=False),
            0x1000020F6014407,
            "DPUCZDX8G_ISA0_B4096_MAX_BG2",
        ),
        # Ultra96 DPU-PYNQ VAI 1.3 (IP 3.3): B1600, RAM low, channel augmentation off
        (
            DpuConfig(arch="B1600", ip_version="3.3", channel_augmentation=False, save_argmax=False, elew_mult=False),
            0x1000020F2014404,
            None,
        ),
        # Ultra96 DPU-PYNQ VAI 1.4 (IP 3.3): B2304, aug on, DSP usage low
        (
            DpuConfig(arch="B2304", ip_version="3.3", dsp_usage="low", save_argmax=False, elew_mult=False),
            0x1000020F6014405,
            "DPUCZDX8G_ISA0_B2304_MAX_BG2",
        ),
        # Ultra96v1/v2 DPU-PYNQ 2.5 (IP 4.0)
        (DpuConfig(arch="B1600", ip_version="4.0", save_argmax=False), 0x101000016010404, "DPUCZDX8G_ISA1_B1600"),
        # ZUBoard-1CG DPU-PYNQ 2.5
        (DpuConfig(arch="B800", ip_version="4.0", save_argmax=False), 0x101000016010201, "DPUCZDX8G_ISA1_B800"),
        # custom XCZU4EV, Vivado flow, IP 4.0, B1024 @ 325 MHz
        (DpuConfig(arch="B1024", ip_version="4.0", save_argmax=False, clock_mhz=325), 0x101000016010402, "DPUCZDX8G_ISA1_B1024"),
        # KV260 DPU-PYNQ design_contest_3.5: URAM, ALU 4, argmax (INFERRED by decoding)
        (
            DpuConfig(arch="B4096", ip_version="4.1", uram_per_core=46, alu_parallel=4, save_argmax=True),
            0x101000056010407,
            "DPUCZDX8G_ISA1_B4096",
        ),
        # VAI 3.5 ZCU102 WAA arch.json: no argmax on a VAI 3.x toolchain -> the decoded name of §1.2
        (
            DpuConfig(arch="B4096", ip_version="4.1", save_argmax=False),
            0x101000016010407,
            "DPUCZDX8G_ISA1_B4096_0101000016010407",
        ),
    ],
)
def test_published_deployments(config: DpuConfig, expected: int, name: str | None) -> None:
    assert fingerprint(resolve(config)) == expected
    if name:
        assert target_name(resolve(config)) == name


def test_ip33_writes_half_pp_pool_parallel_without_depthwise() -> None:
    # docs/hardware.md §1.3 consequence: a v3.3 IP with DWCV disabled differs from the *_MIN targets (PL_PP = 1).
    v33 = isa0("B4096", "MIN", version="3.3")
    assert decode_fingerprint(fingerprint(resolve(v33)))["pool_parallel"] == 4
    assert target_name(resolve(v33)) != "DPUCZDX8G_ISA0_B4096_MIN"
    assert decode_fingerprint(fingerprint(resolve(isa0("B4096", "MIN"))))["pool_parallel"] == 1


def test_arch_json_file_text() -> None:
    result = arch_json(resolve(DpuConfig(arch="B1600", ip_version="4.0", save_argmax=False)))
    assert json.loads(result.file_text()) == {"fingerprint": "0x101000016010404"}


def test_decode_round_trip_over_random_configs() -> None:
    rng = random.Random(1234)
    archs = ["B512", "B800", "B1024", "B1152", "B1600", "B2304", "B3136", "B4096"]
    codes = {a: i for i, a in enumerate(archs)}
    for _ in range(200):
        arch = rng.choice(archs)
        v4 = rng.random() < 0.5
        if v4:
            alu = rng.choice([a for a in (1, 2, 4, 8) if a <= (4 if arch in ("B512", "B800", "B1152") else 8)])
            cfg = DpuConfig(
                arch=arch,
                ip_version="4.1",
                ram_usage=rng.choice(["low", "high"]),
                alu_parallel=alu,
                channel_augmentation=rng.random() < 0.5,
                alu_leakyrelu=rng.random() < 0.5,
                save_argmax=rng.random() < 0.5,
            )
            d = decode_fingerprint(fingerprint(resolve(cfg)))
            assert (d["isa"], d["alu_parallel"], d["alu_leakyrelu"], d["save_argmax"]) == (
                1,
                alu,
                cfg.alu_leakyrelu,
                cfg.save_argmax,
            )
        else:
            cfg = DpuConfig(
                arch=arch,
                ip_version="3.4",
                ram_usage=rng.choice(["low", "high"]),
                save_argmax=False,
                depthwise=rng.random() < 0.5,
                avg_pool=rng.random() < 0.5,
                elew_mult=rng.random() < 0.5,
                channel_augmentation=rng.random() < 0.5,
            )
            d = decode_fingerprint(fingerprint(resolve(cfg)))
            assert (d["isa"], d["avg_pool"], d["elew_mult"], d["dw_parallel"] > 0) == (
                0,
                cfg.avg_pool,
                cfg.elew_mult,
                cfg.depthwise,
            )
        assert d["arch_code"] == codes[arch]
        assert d["img_bank_groups"] == (3 if cfg.ram_usage == "high" else 2)
        assert d["channel_augmentation"] == cfg.channel_augmentation


def test_every_isa_setting_pair_is_distinct() -> None:
    seen = {fingerprint(resolve(isa0(a, s))) for a, s in itertools.product(ISA0_ARCHS, ISA0_SETTINGS)}
    assert len(seen) == len(ISA0_ARCHS) * len(ISA0_SETTINGS)


def test_decode_rejects_other_dpu_types() -> None:
    with pytest.raises(ValueError, match="not a DPUCZDX8G"):
        decode_fingerprint(0x0200000000000000)
