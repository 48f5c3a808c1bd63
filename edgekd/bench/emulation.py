"""Another CPU's int8 kernels on this machine: the runner under QEMU user-mode emulation.

The same artifact computes different int8 networks on different CPUs (:mod:`edgekd.isa`). QEMU's
``qemu-x86_64-static`` with ``QEMU_CPU=Haswell`` hides AVX-512/VNNI from the runtimes, so ONNX Runtime and
OpenVINO dispatch their AVX2 kernels, bit-identical to a real AVX2 CPU (checked against one). The numbers
it computes are real; its latency is not a device latency (instruction-level emulation) and is never
reported as one. QEMU's TCG has no AVX-512, so the VNNI path can't be emulated: on a host without VNNI it
is reachable only through the integer twin.

OpenVINO needs no QEMU for AVX2: oneDNN's dispatcher control ``ONEDNN_MAX_CPU_ISA=AVX2`` makes its CPU
plugin run its own AVX2 kernels natively on any x86 CPU that has AVX2 (its embeddings equal QEMU
Haswell's; ``tests/quant/test_integer_reference.py``). ONNX Runtime has no such switch; on an Intel CPU
that can fault CPUID the preloaded CPUID mask (:mod:`edgekd.bench.cpuid_mask`) hides AVX-512/VNNI from
it, natively. Both are real AVX2 instructions on this core, ~100× faster than QEMU, and their latency is
a measurement of AVX2 code on this CPU (not of an AVX2-only CPU).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.bench import cpuid_mask
from edgekd.bench.cpuid_mask import CpuidMask
from edgekd.errors import UnsupportedTargetError
from edgekd.isa import ARM64, X86_AVX2


@dataclass(frozen=True)
class Emulator:
    """A QEMU user-mode binary and the CPU model it presents."""

    isa: str
    binary: str
    cpu: str
    host_arch: str  # the host architecture whose binaries (this venv's Python) it runs
    how: str = "QEMU user-mode emulation"

    def path(self) -> str | None:
        return shutil.which(self.binary)

    def prefix(self) -> list[str]:
        path = self.path()
        if path is None:
            raise UnsupportedTargetError(
                f"emulating {self.isa} needs {self.binary}: apt-get install qemu-user-static "
                "(`make test` installs it where apt-get exists)"
            )
        return [path]

    def env(self) -> dict[str, str]:
        return {"QEMU_CPU": self.cpu}

    def command(self) -> list[str]:
        """The interpreter to start the runner with: this venv's Python under QEMU."""
        import sys

        return [*self.prefix(), sys.executable]


@dataclass(frozen=True)
class DeviceRoot:
    """Another architecture's Python in a root folder (``edgekd.bench.arm64_root``), under QEMU."""

    isa: str
    cpu: str
    host_arch: str = "any"
    how: str = "QEMU user-mode emulation of an arm64 root"

    def path(self) -> str | None:
        from edgekd.bench import arm64_root

        return "built" if shutil.which("qemu-aarch64-static") and arm64_root.is_built() else None

    def env(self) -> dict[str, str]:
        from edgekd.bench import arm64_root

        return arm64_root.environment(self.cpu)

    def command(self) -> list[str]:
        from edgekd.bench import arm64_root

        return arm64_root.python_command()


@dataclass(frozen=True)
class NativeDispatch:
    """A runtime told by its own switch to dispatch an older ISA's kernels: native, no QEMU."""

    isa: str
    variable: str
    value: str
    host_arch: str
    needs_flag: str  # the /proc/cpuinfo flag the kernels need on this host
    how: str

    def path(self) -> str | None:
        from edgekd.info import cpu_info

        return "native" if self.needs_flag in cpu_info()["features"] else None

    def prefix(self) -> list[str]:
        if self.path() is None:
            raise UnsupportedTargetError(f"{self.how} needs a CPU with {self.needs_flag}")
        return []

    def env(self) -> dict[str, str]:
        return {self.variable: self.value}

    def command(self) -> list[str]:
        import sys

        return [*self.prefix(), sys.executable]


EMULATORS = {X86_AVX2: Emulator(X86_AVX2, "qemu-x86_64-static", "Haswell", "x86_64", "QEMU Haswell")}
# (bench backend, ISA) -> the runtime's own dispatch limit, preferred to QEMU where it exists
DISPATCH = {
    ("device_openvino", X86_AVX2): NativeDispatch(
        X86_AVX2, "ONEDNN_MAX_CPU_ISA", "AVX2", "x86_64", "avx2", "oneDNN's AVX2 kernels (ONEDNN_MAX_CPU_ISA)"
    )
}


ARM64_CPU = "cortex-a72"  # a Raspberry Pi 4's core; profiles name theirs (cpu.qemu_cpu)


def emulator(
    isa: str, backend: str | None = None, cpu: str | None = None
) -> Emulator | NativeDispatch | DeviceRoot | CpuidMask:
    """How to run ``isa``'s kernels here: the backend's own dispatch limit if it has one, else (AVX2 on
    a CPU that can fault CPUID) the CPUID mask, else QEMU (for ARM64, the emulated device root with
    ``cpu``). ``backend=None`` means QEMU."""
    if (backend, isa) in DISPATCH:
        return DISPATCH[(backend, isa)]
    if backend is not None and isa == X86_AVX2 and cpuid_mask.available():
        return CpuidMask()
    if isa == ARM64:
        return DeviceRoot(ARM64, cpu or ARM64_CPU)
    if isa not in EMULATORS:
        raise UnsupportedTargetError(f"no emulator for ISA '{isa}' (known: {', '.join(EMULATORS)})")
    return EMULATORS[isa]


def can_emulate(isa: str, backend: str | None = None) -> bool:
    """Whether this host can run ``isa``'s kernels (the binary or CPU flag exists, same architecture)."""
    import platform

    try:
        emu = emulator(isa, backend)
    except UnsupportedTargetError:
        return False
    return emu.path() is not None and emu.host_arch in ("any", platform.machine().lower())


def emulated_embeddings(
    artifact: Path, images: np.ndarray, isa: str, threads: int = 1, qemu: bool = False, cpu: str | None = None
) -> np.ndarray:
    """Embeddings of ``images`` ((N, H, W, 3) uint8 RGB) computed by the artifact's runtime on ``isa``'s
    kernels (its own dispatch limit, or QEMU; ``qemu=True`` forces QEMU): the runner bundle, as
    ``edgekd bench`` runs it, with one timed run (ignored)."""
    import tempfile

    from edgekd.bench import _format
    from edgekd.bench.bundle import run_local
    from edgekd.bench.runner_script import decode_embeddings

    fmt = _format(Path(artifact))
    backend = None if qemu else fmt.backend
    emulator(isa, backend, cpu).command()  # no emulator here: say how to get one before any work
    with tempfile.TemporaryDirectory(prefix="edgekd-emulate-") as tmp:
        run_path, _ = fmt.prepare(Path(artifact), Path(tmp))
        np.save(Path(tmp) / "images.npy", np.ascontiguousarray(images, dtype=np.uint8))
        job = {
            "artifact": str(Path(run_path).resolve()),
            "backend": fmt.backend,
            "threads": threads,
            "providers": [],
            "warmup": 0,
            "runs": 1,
            "seconds": None,
            "batch": 1,
            "input": fmt.preprocess(Path(artifact), None).to_dict(),
            "images": str(Path(tmp) / "images.npy"),
            "embed_batch": 16,
            "seed": 0,
        }
        result = run_local(job, fmt.backend, fmt.module, emulate=isa, native=not qemu, cpu=cpu)
    return decode_embeddings(result["embeddings"])
