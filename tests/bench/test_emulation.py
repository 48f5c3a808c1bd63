"""QEMU emulation of another ISA: clear errors when it can't run."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.bench import emulation
from edgekd.errors import UnsupportedTargetError
from edgekd.isa import ARM64, X86_AVX2


def test_unknown_isa_has_no_emulator():
    with pytest.raises(UnsupportedTargetError, match=r"no emulator for ISA 'riscv64'.*x86-avx2"):
        emulation.emulator("riscv64")
    assert not emulation.can_emulate("riscv64")


def test_arm64_device_not_built_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEKD_ARM64_ROOT", str(tmp_path / "none"))
    emu = emulation.emulator(ARM64, cpu="cortex-a76")
    assert emu.env()["QEMU_CPU"] == "cortex-a76" and not emulation.can_emulate(ARM64)
    if emulation.shutil.which("qemu-aarch64-static"):
        with pytest.raises(UnsupportedTargetError, match=r"not built.*make arm64-device"):
            emu.command()


def test_missing_qemu_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(emulation.shutil, "which", lambda _: None)
    assert not emulation.can_emulate(X86_AVX2)
    with pytest.raises(
        UnsupportedTargetError, match="needs qemu-x86_64-static: apt-get install qemu-user-static"
    ):
        emulation.emulator(X86_AVX2).prefix()
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(UnsupportedTargetError, match="qemu-user-static"):
        emulation.emulated_embeddings(model, np.zeros((1, 112, 112, 3), np.uint8), X86_AVX2, qemu=True)


def test_openvino_runs_avx2_natively_through_onednns_dispatch_limit():
    """OpenVINO needs no QEMU for AVX2: oneDNN's own ISA switch, on any x86 CPU with AVX2."""
    emu = emulation.emulator(X86_AVX2, "device_openvino")
    assert emu.env() == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    if emulation.can_emulate(X86_AVX2, "device_openvino"):
        assert emu.prefix() == []  # no QEMU binary in front of the runner
    # MLAS has no switch: the CPUID mask where this CPU can fault CPUID, else QEMU
    ort = (emulation.CpuidMask, emulation.Emulator)[not emulation.cpuid_mask.available()]
    assert isinstance(emulation.emulator(X86_AVX2, "device_ort"), ort)
    assert isinstance(emulation.emulator(X86_AVX2), emulation.Emulator)  # no backend: QEMU
    assert isinstance(emulation.emulator(ARM64, "device_openvino"), emulation.DeviceRoot)


def test_native_dispatch_needs_the_cpu_flag(monkeypatch):
    monkeypatch.setattr("edgekd.info.cpu_info", lambda *a: {"features": ["sse4_2"]})
    assert not emulation.can_emulate(X86_AVX2, "device_openvino")
    with pytest.raises(UnsupportedTargetError, match="needs a CPU with avx2"):
        emulation.emulator(X86_AVX2, "device_openvino").prefix()
