"""Deployment ISAs: which integer arithmetic a CPU gives a runtime's int8 kernels.

The same int8 artifact computes different numbers on different CPUs. ONNX Runtime's MLAS and OpenVINO's
oneDNN multiply u8 activations by s8 weights; on x86-64 *without* VNNI (AVX2, or AVX-512 without VNNI)
they do it with ``VPMADDUBSW``, which adds two adjacent u8×s8 products into a **saturating int16** before
widening to int32. With VNNI (``VPDPBUSD``), on ARM64 (``SDOT``, or ``SMULL``/``SADALP`` widening) and
in XNNPACK (LiteRT) the accumulation is exact int32. Sources: oneDNN's "Nuances of int8 computations",
OpenVINO's "Saturation (overflow) issue", MLAS ``QgemmU8X8KernelAvx2``/``ConvSymKernelAvx2``.

Rule: a pair sum can saturate only if ``2 · 255 · max|w| > 32767``. Weights limited to |w| ≤ 64 (edgekd's
portable targets use the 7-bit range [-63, 63]: ``2·255·63 = 32130``) make every pair sum exact, so the
artifact computes the same int8 network on every x86-64 and ARM64 CPU. The cost is one bit of weight
resolution (measured in ``benchmarks/results/isa.md``). The ``*-vnni`` targets keep 8-bit weights and are
exact only where accumulation is exact.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path

X86_AVX2, X86_VNNI, ARM64 = "x86-avx2", "x86-vnni", "arm64"
ISAS = (X86_AVX2, X86_VNNI, ARM64)
INT16_MAX = 32767
ACTIVATION_MAX = 255  # u8 activations (s8 ones are shifted to u8 by the kernels: same bound)
MAX_EXACT_WEIGHT = INT16_MAX // (2 * ACTIVATION_MAX)  # 64

# The runtimes whose x86 kernels sum u8×s8 pairs in int16 without VNNI (XNNPACK widens first)
PAIR_SATURATING_RUNTIMES = ("onnxruntime", "openvino")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")

DESCRIPTIONS = {
    X86_AVX2: "x86-64 without VNNI (AVX2, or AVX-512 without VNNI)",
    X86_VNNI: "x86-64 with AVX-512 VNNI or AVX-VNNI",
    ARM64: "ARM64 (NEON; SDOT where present)",
}


def isa_from_flags(arch: str, flags: Iterable[str]) -> str:
    """The deployment ISA of a CPU from its architecture and /proc/cpuinfo flag names."""
    arch = arch.lower()
    if arch in ("arm64", "aarch64"):
        return ARM64
    if arch not in ("x86_64", "amd64"):
        raise ValueError(f"no int8 arithmetic known for CPU architecture '{arch}' (known: x86_64, arm64)")
    return X86_VNNI if set(flags) & set(VNNI_FLAGS) else X86_AVX2


# oneDNN dispatch levels (ONEDNN_MAX_CPU_ISA) below VNNI: OpenVINO then runs pair-saturating kernels
ONEDNN_NON_VNNI_LEVELS = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


def host_isa(cpuinfo: Path = Path("/proc/cpuinfo"), runtime: str | None = None) -> str:
    """The ISA whose int8 kernels run in this process: /proc/cpuinfo's flags, corrected by what CPUID says
    to this process (numpy's runtime detection: under QEMU Haswell /proc/cpuinfo still lists the host's
    VNNI, CPUID does not) and, for OpenVINO, by oneDNN's ``ONEDNN_MAX_CPU_ISA`` dispatch limit."""
    from edgekd.info import cpu_info

    features = cpu_info(cpuinfo)["features"]
    isa = isa_from_flags(platform.machine(), features)
    if isa == X86_VNNI and cpuid_lacks_avx512_vnni(features):
        isa = X86_AVX2
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa == X86_VNNI and runtime == "openvino" and limit in ONEDNN_NON_VNNI_LEVELS:
        isa = X86_AVX2
    return isa


def cpuid_lacks_avx512_vnni(features: Iterable[str]) -> bool:
    """True when /proc/cpuinfo's ``features`` claim AVX-512 VNNI but CPUID, as this process sees it,
    denies it."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as cpuid
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as cpuid
    return "avx512_vnni" in features and cpuid.get("AVX512VNNI") is False


def pair_saturating(runtime: str, isa: str) -> bool:
    """Whether ``runtime``'s int8 kernels add u8×s8 pairs into a saturating int16 on ``isa``."""
    return isa == X86_AVX2 and runtime in PAIR_SATURATING_RUNTIMES


def exact_isas(runtime: str, weight_bound: int) -> tuple[str, ...]:
    """The ISAs on which an artifact with weights in [-weight_bound, weight_bound] accumulates exactly."""
    return tuple(isa for isa in ISAS if weight_bound <= MAX_EXACT_WEIGHT or not pair_saturating(runtime, isa))


def arithmetic_summary(runtime: str, isa: str) -> str:
    """One line for ``edgekd info``: how ``runtime`` accumulates u8/s8 × s8 products on ``isa``."""
    if pair_saturating(runtime, isa):
        return (
            f"u8×s8 pairs summed in saturating int16 (VPMADDUBSW): exact only for weights |w| ≤ "
            f"{MAX_EXACT_WEIGHT} (the 7-bit onnx/openvino targets)"
        )
    if isa == X86_VNNI and runtime in PAIR_SATURATING_RUNTIMES:
        return "exact int32 (VNNI VPDPBUSD)"
    if isa == ARM64:
        return "exact int32 (NEON widening or SDOT)"
    return "exact int32 (products widened to int16/int32 before adding)"
