"""The resource model against PG338 Tables 3-12 (seed 004_...), the gtcl formulas (docs/hardware.md §2.4)
and the IP 4.1 build of docs/calibration.md §4. Expected numbers are transcribed from those documents."""

from __future__ import annotations

import math

import pytest

from explorer.hardware.config import DpuConfig, resolve
from explorer.hardware.database import load_database
from explorer.hardware.resources import DEFAULT_CEILINGS, Resources, check_fit, estimate_resources, peak_gops

ARCHS = ["B512", "B800", "B1024", "B1152", "B1600", "B2304", "B3136", "B4096"]

# PG338 Table 3: one core, RAM low, depthwise, avg pool, channel aug, LeakyReLU+ReLU6, DSP usage low.
TABLE3 = {  # lut, ff, bram36, dsp
    "B512": (27893, 35435, 73.5, 78),
    "B800": (30468, 42773, 91.5, 117),
    "B1024": (34471, 50763, 105.5, 154),
    "B1152": (33238, 49040, 123, 164),
    "B1600": (38716, 63033, 127.5, 232),
    "B2304": (42842, 73326, 167, 326),
    "B3136": (47667, 85778, 210, 436),
    "B4096": (53540, 105008, 257, 562),
}
TABLE4_HIGH = {
    "B512": 89.5,
    "B800": 109.5,
    "B1024": 137.5,
    "B1152": 145,
    "B1600": 163.5,
    "B2304": 211,
    "B3136": 262,
    "B4096": 317.5,
}
TABLE5 = {"B512": 3121, "B800": 2624, "B1024": 3133, "B1152": 1744, "B1600": 2476, "B2304": 1710, "B3136": 1946, "B4096": 1701}
TABLE6 = {  # lut, bram36, dsp
    "B512": (1734, 4, 12),
    "B800": (2293, 4.5, 15),
    "B1024": (2744, 4, 24),
    "B1152": (2365, 5.5, 18),
    "B1600": (3392, 4.5, 30),
    "B2304": (3943, 5.5, 36),
    "B3136": (4269, 6.5, 42),
    "B4096": (4930, 7.5, 48),
}
TABLE7 = {  # lut, ff, dsp
    "B512": (159, -113, 8),
    "B800": (295, -93, 10),
    "B1024": (211, -65, 8),
    "B1152": (364, -274, 12),
    "B1600": (111, 292, 10),
    "B2304": (210, -158, 12),
    "B3136": (329, -267, 14),
    "B4096": (287, 78, 16),
}
TABLE8 = {"B512": 1507, "B800": 2016, "B1024": 1564, "B1152": 2352, "B1600": 1862, "B2304": 2338, "B3136": 2574, "B4096": 3081}
TABLE9 = {"B512": 347, "B800": 725, "B1024": 451, "B1152": 780, "B1600": 467, "B2304": 706, "B3136": 831, "B4096": 925}
TABLE11 = {  # extra lut, ff, dsp of low DSP usage over high
    "B512": (1418, 1903, -32),
    "B800": (1445, 2550, -40),
    "B1024": (1978, 3457, -64),
    "B1152": (1661, 2525, -48),
    "B1600": (2515, 4652, -80),
    "B2304": (3069, 4762, -96),
    "B3136": (3520, 6219, -112),
    "B4096": (3900, 7359, -128),
}


def reference(arch: str, **changes: object) -> DpuConfig:
    """The PG338 Table 3 reference core on IP 3.4, with some options changed."""
    fields = dict(
        arch=arch,
        cores=1,
        ram_usage="low",
        dsp_usage="low",
        depthwise=True,
        avg_pool=True,
        channel_augmentation=True,
        relu_type="relu_leakyrelu_relu6",
        elew_mult=False,
        softmax=False,
        save_argmax=False,
        ip_version="3.4",
    )
    fields.update(changes)
    return DpuConfig(**fields)  # type: ignore[arg-type]


def core(config: DpuConfig) -> Resources:
    return estimate_resources(resolve(config)).per_core


def diff(a: DpuConfig, b: DpuConfig) -> Resources:
    ra, rb = core(a), core(b)
    return Resources(ra.lut - rb.lut, ra.ff - rb.ff, ra.bram36 - rb.bram36, ra.uram - rb.uram, ra.dsp - rb.dsp)


@pytest.mark.parametrize("arch", ARCHS)
def test_table3_reference_core(arch: str) -> None:
    r = core(reference(arch))
    assert (r.lut, r.ff, r.bram36, r.dsp) == TABLE3[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_table4_bram_low_and_high(arch: str) -> None:
    assert core(reference(arch)).bram36 == TABLE3[arch][2]
    assert core(reference(arch, ram_usage="high")).bram36 == TABLE4_HIGH[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_table5_channel_augmentation_lut(arch: str) -> None:
    d = diff(reference(arch), reference(arch, channel_augmentation=False))
    assert (d.lut, d.bram36, d.dsp) == (TABLE5[arch], 0, 0)


@pytest.mark.parametrize("arch", ARCHS)
def test_table6_depthwise_lut_bram_dsp(arch: str) -> None:
    d = diff(reference(arch), reference(arch, depthwise=False))
    assert (d.lut, d.bram36, d.dsp) == TABLE6[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_table7_elementwise_multiply(arch: str) -> None:
    d = diff(reference(arch, elew_mult=True), reference(arch))
    assert (d.lut, d.ff, d.dsp) == TABLE7[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_table8_average_pool_lut(arch: str) -> None:
    assert diff(reference(arch), reference(arch, avg_pool=False)).lut == TABLE8[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_table9_leakyrelu_lut(arch: str) -> None:
    assert diff(reference(arch), reference(arch, relu_type="relu_relu6")).lut == TABLE9[arch]


def test_table10_softmax() -> None:
    with_sfm = estimate_resources(resolve(reference("B4096", softmax=True)))
    assert with_sfm.softmax == Resources(9580, 8019, 4, 0, 14)
    assert with_sfm.dpu_ip.dsp - estimate_resources(resolve(reference("B4096"))).dpu_ip.dsp == 14


@pytest.mark.parametrize("arch", ARCHS)
def test_table11_low_dsp_usage(arch: str) -> None:
    d = diff(reference(arch), reference(arch, dsp_usage="high"))
    assert (d.lut, d.ff, d.dsp) == TABLE11[arch]


# docs/hardware.md §2.4 gtcl formulas and its cross-checks (PG338 v1.2 Table 9 DSP without depthwise).
@pytest.mark.parametrize(
    ("arch", "dsp_usage", "expected"), [("B4096", "high", 642), ("B4096", "low", 514), ("B512", "high", 98), ("B512", "low", 66)]
)
def test_gtcl_dsp_without_depthwise(arch: str, dsp_usage: str, expected: int) -> None:
    assert core(reference(arch, depthwise=False, dsp_usage=dsp_usage)).dsp == expected


@pytest.mark.parametrize("arch", ARCHS)
def test_gtcl_dsp_formula_general(arch: str) -> None:
    a = load_database().ip.architectures[arch]
    for dsp_usage, depthwise in [("high", True), ("high", False), ("low", True), ("low", False)]:
        dw_pp = a.pp // 2
        expected = 2 + a.pp * a.icp * a.ocp // 4 + (a.pp * a.ocp if dsp_usage == "high" else 0)
        expected += (dw_pp * a.icp // 4 + dw_pp * a.icp // 2) if depthwise else 0
        assert core(reference(arch, dsp_usage=dsp_usage, depthwise=depthwise)).dsp == expected


@pytest.mark.parametrize("arch", ARCHS)
def test_v40_bram_table(arch: str) -> None:
    v40 = {
        "B512": (72, 88),
        "B800": (90, 108),
        "B1024": (104, 136),
        "B1152": (121, 143),
        "B1600": (126, 162),
        "B2304": (165, 209),
        "B3136": (208, 260),
        "B4096": (255, 315),
    }
    low = core(DpuConfig(arch=arch, ram_usage="low", ip_version="4.0", save_argmax=False)).bram36
    high = core(DpuConfig(arch=arch, ram_usage="high", ip_version="4.0", save_argmax=False)).bram36
    assert (low, high) == v40[arch]


def test_uram_replaces_block_ram_banks() -> None:
    # B4096: 2 URAM per bank (128-bit bank, 72-bit URAM); 46 URAM = 23 banks = all 17 weight + 1 bias + 5 image.
    base = core(DpuConfig(arch="B4096", ip_version="4.1"))
    with_uram = core(DpuConfig(arch="B4096", ip_version="4.1", uram_per_core=46))
    assert with_uram.uram == 46
    assert base.bram36 - with_uram.bram36 == 23 * 15 / 2
    # B512: one URAM per 64-bit bank.
    assert core(DpuConfig(arch="B512", ip_version="4.1", uram_per_core=3)).bram36 == 72 - 3 * 8 / 2


@pytest.mark.parametrize(
    ("alu", "lut", "ff", "bram", "dsp"),
    [
        (1, 44212, 88250, 255, 662),
        (2, 46599, 92380, 255, 678),
        (4, 51388, 98525, 255, 710),
        (8, 60751, 111329, 255, 774),
    ],
)
def test_ip41_alu_rows_within_3_percent(alu: int, lut: int, ff: int, bram: int, dsp: int) -> None:
    r = core(DpuConfig(arch="B4096", ip_version="4.1", alu_parallel=alu, dsp_usage="high", ram_usage="low"))
    assert r.bram36 == bram and r.dsp == dsp
    assert abs(r.lut - lut) / lut <= 0.03
    assert abs(r.ff - ff) / ff <= 0.03


def test_ip41_zcu102_trd_build_within_3_percent() -> None:
    # ZCU102 DPU TRD, Vitis AI 3.0: 3 x B4096, RAM low, aug, softmax, 325 MHz (docs/calibration.md §4).
    est = estimate_resources(resolve(DpuConfig(arch="B4096", cores=3, softmax=True, clock_mhz=325, ip_version="4.1")))
    ip = est.dpu_ip
    for got, published in [(ip.lut, 164612), (ip.ff, 302254), (ip.bram36, 769), (ip.dsp, 2138)]:
        assert abs(got - published) / published <= 0.03
    assert (ip.bram36, ip.dsp) == (769, 2138)
    assert est.softmax == Resources(9436, 8303, 4, 0, 8)
    for got, published in [
        (est.per_core.lut, 50850),
        (est.per_core.ff, 97100),
        (est.per_core.bram36, 255),
        (est.per_core.dsp, 710),
    ]:
        assert abs(got - published) / published <= 0.03


def test_ip41_xci_b1024_dsp() -> None:
    # RahulanT xci, B1024 high DSP: CONV_DSP_NUM 192 and total 230 (docs/hardware.md §2.4).
    assert core(DpuConfig(arch="B1024", ip_version="4.1", dsp_usage="high")).dsp == 230


@pytest.mark.parametrize(
    ("arch", "cores", "mhz", "published"),
    [
        ("B1152", 1, 200, 230),
        ("B1152", 1, 370, 426),
        ("B2304", 1, 370, 852),
        ("B4096", 1, 350, 1400),
        ("B4096", 2, 330, 2700),
        ("B4096", 3, 333, 4100),
    ],
)
def test_table12_peak_gops(arch: str, cores: int, mhz: float, published: float) -> None:
    # PG338 rounds Table 12 (1433.6 is printed as 1400); the model must agree within that rounding.
    got = peak_gops(resolve(DpuConfig(arch=arch, cores=cores, clock_mhz=mhz)))
    a = load_database().ip.architectures[arch]
    assert got == 2 * a.pp * a.icp * a.ocp * cores * mhz / 1000
    assert abs(got - published) / published < 0.025


def test_cores_scale_core_resources_and_platform_is_separate() -> None:
    one = estimate_resources(resolve(DpuConfig(arch="B2304", cores=1)))
    two = estimate_resources(resolve(DpuConfig(arch="B2304", cores=2)))
    assert two.dpu_ip == one.dpu_ip.scaled(2)
    assert two.total.lut > two.dpu_ip.lut and two.platform.lut > one.platform.lut
    assert one.source == "model"


def test_fit_check_headroom_and_constraint() -> None:
    db = load_database()
    zu3 = db.device("XCZU3EG")
    small = estimate_resources(resolve(DpuConfig(arch="B1600", clock_mhz=200))).total
    report = check_fit(small, zu3)
    assert report.fits
    assert report.headroom["dsp"] == pytest.approx(DEFAULT_CEILINGS["dsp"] - small.dsp / zu3.dsp)
    assert report.constraint_value() <= 0
    big = estimate_resources(resolve(DpuConfig(arch="B4096", cores=2))).total
    over = check_fit(big, zu3)
    assert not over.fits and over.constraint_value() > 0 and over.headroom["dsp"] < 0
    strict = check_fit(small, zu3, {"dsp": small.dsp / zu3.dsp - 0.01})
    assert not strict.fits and not strict.resources["dsp"].fits
    assert math.isclose(strict.resources["dsp"].ceiling, small.dsp / zu3.dsp - 0.01)
