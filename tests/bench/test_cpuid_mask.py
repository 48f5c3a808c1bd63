"""The CPUID mask: ONNX Runtime's AVX2 kernels natively on a VNNI CPU, and clear errors where it can't."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgekd.bench import cpuid_mask, emulation
from edgekd.errors import UnsupportedTargetError
from edgekd.isa import X86_AVX2

needs_mask = pytest.mark.skipif(
    not cpuid_mask.available(), reason=f"no CPUID mask here: {cpuid_mask._library()[1]}"
)


@pytest.fixture
def fresh_mask(monkeypatch, tmp_path):
    """A mask built from nothing in tmp_path (the per-process cache forgotten before and after)."""
    monkeypatch.setenv("EDGEKD_CPUID_MASK_DIR", str(tmp_path))
    cpuid_mask._library.cache_clear()
    yield
    cpuid_mask._library.cache_clear()


def _masked(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **cpuid_mask.CpuidMask().env()}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@needs_mask
def test_masked_process_is_an_avx2_host():
    """CPUID without AVX-512/VNNI: edgekd (and numpy, ORT, oneDNN) see an AVX2 CPU."""
    code = (
        "from edgekd.isa import host_isa; from edgekd.bench.cpuid_mask import PROBE; print(host_isa()); "
        "exec(PROBE)"
    )
    assert _masked(code).stdout.split() == [X86_AVX2, "1", "0", "0"]  # AVX2 yes, AVX512F no, VNNI no


@needs_mask
def test_real_segfaults_still_reach_the_program():
    """The mask handles CPUID traps only: a real fault still reaches Python's faulthandler and kills."""
    proc = _masked("import faulthandler, ctypes; faulthandler.enable(); ctypes.string_at(0)")
    assert proc.returncode == -11 and "Segmentation fault" in proc.stderr


@needs_mask
@pytest.mark.skipif(not emulation.shutil.which("qemu-x86_64-static"), reason="needs qemu-user-static")
def test_masked_onnxruntime_computes_what_qemu_haswell_computes(tmp_path):
    """8-bit weights, where u8×s8 pairs saturate without VNNI: ORT under the mask gives the embeddings
    of the unmodified ORT under QEMU Haswell (a real AVX2 CPU's, docs/convert.md), not a VNNI CPU's."""
    from edgekd.isa import X86_VNNI
    from tests.quant.test_integer_reference import FACES, _artifact, _close, _twin

    converted, spec, pre, path = _artifact("onnx-vnni", tmp_path)
    assert isinstance(emulation.emulator(X86_AVX2, "device_ort"), cpuid_mask.CpuidMask)
    masked = emulation.emulated_embeddings(path, FACES, X86_AVX2)
    assert _close(masked, emulation.emulated_embeddings(path, FACES, X86_AVX2, qemu=True))
    assert not _close(masked, _twin(converted, spec, pre, X86_VNNI).embed(FACES))


def test_a_cpu_without_cpuid_faulting_says_so_and_falls_back_to_qemu(monkeypatch, fresh_mask):
    monkeypatch.setattr(cpuid_mask, "cpu_flags", lambda: {"avx2", "fma"})  # e.g. AMD
    assert not cpuid_mask.available()
    with pytest.raises(UnsupportedTargetError, match="needs the CPU flag cpuid_fault"):
        cpuid_mask.CpuidMask().prefix()
    assert isinstance(emulation.emulator(X86_AVX2, "device_ort"), emulation.Emulator)


def test_no_compiler_says_how_to_get_one(monkeypatch, fresh_mask):
    monkeypatch.setattr(cpuid_mask, "cpu_flags", lambda: {"avx2", "cpuid_fault"})
    monkeypatch.setattr(cpuid_mask.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(cpuid_mask.shutil, "which", lambda _: None)
    with pytest.raises(UnsupportedTargetError, match="no C compiler"):
        cpuid_mask.library()


def test_broken_compiler_output_is_reported(monkeypatch, fresh_mask):
    monkeypatch.setattr(cpuid_mask, "cpu_flags", lambda: {"avx2", "cpuid_fault"})
    monkeypatch.setattr(cpuid_mask.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("CC", "false")
    with pytest.raises(UnsupportedTargetError, match="building the CPUID mask failed"):
        cpuid_mask.library()


def test_arm_hosts_have_no_mask(monkeypatch, fresh_mask):
    monkeypatch.setattr(cpuid_mask.platform, "machine", lambda: "aarch64")
    with pytest.raises(UnsupportedTargetError, match="x86-64 hosts, not aarch64"):
        cpuid_mask.library()


def test_module_says_why_there_is_no_mask(capsys, monkeypatch, fresh_mask):
    monkeypatch.setattr(cpuid_mask.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpuid_mask, "cpu_flags", lambda: set())
    assert cpuid_mask.main() == 2
    assert "needs the CPU flag avx2" in capsys.readouterr().err


@needs_mask
def test_module_prints_a_library_that_masks(capsys, fresh_mask):
    assert cpuid_mask.main() == 0
    lib = capsys.readouterr().out.strip()
    assert lib.endswith(".so") and os.path.isfile(lib)


@needs_mask
def test_edgekd_info_under_the_mask_reports_the_avx2_arithmetic():
    """`edgekd info` says what the runtimes dispatch (CPUID), not what /proc/cpuinfo lists (VNNI here)."""
    info = _masked(
        "from edgekd.info import int8_arithmetic; import json; print(json.dumps(int8_arithmetic()))"
    )
    int8 = json.loads(info.stdout)
    assert int8["isa"] == X86_AVX2 and "saturating int16" in int8["runtimes"]["onnxruntime"]
    assert "onnx" in int8["exact_targets"] and "onnx-vnni" in int8["inexact_targets"]
