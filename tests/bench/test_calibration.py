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


def test_a_measured_device_is_fitted_back_to_the_constants_that_made_it():
    """fit_measured recovers (fp32 eff, int8 eff, overhead) from latencies the roofline itself produced;
    fit_int8_efficiency finds the int8 efficiency of a measured float/int8 speed-up."""
    from dataclasses import replace

    from edgekd.bench.roofline import estimate

    unit = replace(load_profile("x86").cpu, fp32_efficiency=0.6, int8_efficiency=0.3, overhead_us=20.0)
    nets = [onnx_ops(calibration.mobilenet_v2()), onnx_ops(calibration.mobilenet_v1()),
            onnx_ops(calibration.mobilenet_v2(int8=True))]  # fmt: skip
    measured = [(ops, estimate(ops, unit).latency_ms) for ops in nets]
    assert calibration.fit_measured(measured, unit) == pytest.approx((0.6, 0.3, 20.0))
    flt, int8 = nets[0], nets[2]
    speedup = estimate(flt, unit).latency_ms / estimate(int8, unit).latency_ms
    assert calibration.fit_int8_efficiency(flt, int8, unit, speedup) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="at least one"):
        calibration.fit_measured([], unit)
