"""Deployment ISAs: the int16 pair-saturation rule, which targets are exact where, and the refusals."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgekd.bench.profiles import list_profiles, load_profile
from edgekd.cli import main
from edgekd.errors import ConfigError
from edgekd.info import int8_arithmetic
from edgekd.isa import ARM64, ISAS, MAX_EXACT_WEIGHT, X86_AVX2, X86_VNNI, exact_isas, isa_from_flags
from edgekd.quant import list_targets, load_target


@pytest.mark.parametrize(
    ("arch", "flags", "isa"),
    [
        ("x86_64", ["avx2", "fma"], X86_AVX2),
        ("x86_64", ["avx2", "avx512f"], X86_AVX2),  # AVX-512 without VNNI still pairs into int16
        ("x86_64", ["avx2", "avx512_vnni"], X86_VNNI),
        ("AMD64", ["avx_vnni"], X86_VNNI),
        ("aarch64", ["asimd"], ARM64),
        ("arm64", [], ARM64),
    ],
)
def test_isa_from_cpu_flags(arch, flags, isa):
    assert isa_from_flags(arch, flags) == isa


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="riscv64"):
        isa_from_flags("riscv64", [])


def test_the_exact_weight_bound_is_the_int16_limit_of_a_u8_pair():
    assert 2 * 255 * MAX_EXACT_WEIGHT <= 32767 < 2 * 255 * (MAX_EXACT_WEIGHT + 1)
    assert exact_isas("onnxruntime", 63) == exact_isas("openvino", 64) == ISAS
    assert exact_isas("onnxruntime", 127) == exact_isas("openvino", 65) == (X86_VNNI, ARM64)
    assert exact_isas("litert", 127) == ISAS  # XNNPACK widens before it adds


def test_shipped_targets_say_where_they_are_exact():
    exact = {name: load_target(name).exact_isas for name in list_targets()}
    assert exact == {
        "onnx": ISAS,
        "openvino": ISAS,
        "tflite": ISAS,
        "onnx-vnni": (X86_VNNI, ARM64),
        "openvino-vnni": (X86_VNNI, ARM64),
    }
    assert load_target("onnx").weight_bound == load_target("openvino").weight_bound == 63


def test_profiles_know_their_deployment_isa():
    isas = {name: load_profile(name).cpu.int8_isa for name in list_profiles()}
    assert isas.pop("x86") == X86_AVX2 and isas.pop("x86-vnni") == X86_VNNI
    assert set(isas.values()) == {ARM64}  # Raspberry Pis and Jetsons


def test_a_vnni_target_is_refused_for_an_avx2_device():
    spec = load_target("onnx-vnni")
    spec.check_deployment(load_profile("x86-vnni").cpu.int8_isa, "x86-vnni")
    spec.check_deployment(load_profile("rpi4").cpu.int8_isa, "rpi4")
    with pytest.raises(ConfigError, match=r"on x86 \(x86-avx2\).*saturating int16.*--target onnx\b"):
        spec.check_deployment(load_profile("x86").cpu.int8_isa, "x86")
    load_target("onnx").check_deployment(X86_AVX2)  # 7-bit: exact


def test_distill_qat_refuses_before_training(tmp_path):
    args = ["distill-qat", "--target", "openvino-vnni", "--profile", "x86", "--data", "synthetic"]
    result = CliRunner().invoke(main, [*args, "--steps", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "saturating int16" in result.output and "--target openvino" in result.output
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_info_says_how_each_runtime_accumulates():
    avx2 = int8_arithmetic(["avx2", "fma"], "x86_64")
    assert avx2["isa"] == X86_AVX2 and "saturating int16" in avx2["runtimes"]["onnxruntime"]
    assert "saturating" in avx2["runtimes"]["openvino"] and "exact" in avx2["runtimes"]["litert"]
    assert avx2["inexact_targets"] == ["onnx-vnni", "openvino-vnni"]
    vnni = int8_arithmetic(["avx2", "avx512_vnni"], "x86_64")
    assert vnni["inexact_targets"] == [] and "VNNI" in vnni["runtimes"]["onnxruntime"]
    assert int8_arithmetic([], "aarch64")["isa"] == ARM64


def test_host_isa_follows_cpuid_and_onednns_dispatch_limit(monkeypatch):
    """/proc/cpuinfo is the machine's; CPUID (under QEMU) and ONEDNN_MAX_CPU_ISA decide what runs here."""
    import edgekd.isa as isa_module

    monkeypatch.setattr("edgekd.info.cpu_info", lambda *a: {"features": ["avx2", "avx512f", "avx512_vnni"]})
    monkeypatch.setattr(isa_module.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(isa_module, "cpuid_lacks_avx512_vnni", lambda features: False)
    assert isa_module.host_isa() == X86_VNNI
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert isa_module.host_isa(runtime="openvino") == X86_AVX2
    assert isa_module.host_isa(runtime="onnxruntime") == X86_VNNI  # MLAS has no such switch
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert isa_module.host_isa(runtime="openvino") == X86_VNNI
    monkeypatch.setattr(isa_module, "cpuid_lacks_avx512_vnni", lambda features: True)  # e.g. QEMU Haswell
    assert isa_module.host_isa() == X86_AVX2


def test_host_isa_under_qemu_haswell_is_avx2():
    import os
    import subprocess

    from edgekd.bench.emulation import can_emulate, emulator

    if not can_emulate(X86_AVX2):
        pytest.skip("x86-avx2 not emulable here: needs qemu-user-static")
    emu = emulator(X86_AVX2)
    code = "from edgekd.isa import host_isa; print(host_isa())"
    out = subprocess.run(
        [*emu.command(), "-c", code], env={**os.environ, **emu.env()},
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert out.stdout.strip() == X86_AVX2
