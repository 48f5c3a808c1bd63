"""The roofline's calibration: MobileNet op lists and the fitted constants the profiles ship with."""

from __future__ import annotations

import pytest

from edgekd.bench import calibration
from edgekd.bench.profiles import CPU_FP32_EFFICIENCY, CPU_INT8_EFFICIENCY, load_profile
from edgekd.bench.roofline import onnx_ops

# published multiply-accumulates at 224×224 (the networks' papers / torchvision), in millions
PUBLISHED_MACS = {
    "mobilenet_v1": 569,
    "mobilenet_v2": 300,
    "mobilenet_v3_large": 217,
    "mobilenet_v3_small": 56,
}


@pytest.mark.parametrize("name", list(calibration.NETWORKS))
def test_rebuilt_networks_have_the_published_work(name):
    macs = sum(op.macs for op in onnx_ops(calibration.NETWORKS[name]())) / 1e6
    assert macs == pytest.approx(PUBLISHED_MACS[name], rel=0.03)


def test_int8_graphs_are_int8():
    ops = onnx_ops(calibration.mobilenet_v2(int8=True))
    assert all(op.precision == "int8" for op in ops if op.kind == "compute")


def test_shipped_constants_are_the_fit_and_the_error_is_as_documented():
    cal = calibration.calibrate()
    assert (cal.fp32_efficiency, cal.int8_efficiency) == (CPU_FP32_EFFICIENCY, CPU_INT8_EFFICIENCY)
    assert cal.overhead_us == load_profile(calibration.ANCHOR_PROFILE).cpu.overhead_us
    assert max(abs(e) for e in cal.errors()) < 0.05  # docs/profiles.md: within 5 % when fitted
    assert max(abs(e) for e in cal.errors("loo_ms")) < 0.15  # and within 15 % leave-one-out
