"""Another CPU's int8 kernels on this machine: the runner under QEMU user-mode emulation.

The same artifact computes different int8 networks on different CPUs (:mod:`edgekd.isa`). QEMU's
``qemu-x86_64-static`` with ``QEMU_CPU=Haswell`` hides AVX-512/VNNI from the runtimes, so ONNX Runtime and
OpenVINO dispatch their AVX2 kernels, bit-identical to a real AVX2 CPU (checked against one). The numbers
it computes are real; its latency is not a device latency (instruction-level emulation) and is never
reported as one. QEMU's TCG has no AVX-512, so the VNNI path can't be emulated: on a host without VNNI it
is reachable only through the integer twin.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import UnsupportedTargetError
from edgekd.isa import X86_AVX2


@dataclass(frozen=True)
class Emulator:
    """A QEMU user-mode binary and the CPU model it presents."""

    isa: str
    binary: str
    cpu: str
    host_arch: str  # the host architecture whose binaries (this venv's Python) it runs

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


EMULATORS = {X86_AVX2: Emulator(X86_AVX2, "qemu-x86_64-static", "Haswell", "x86_64")}


def emulator(isa: str) -> Emulator:
    if isa not in EMULATORS:
        raise UnsupportedTargetError(f"no emulator for ISA '{isa}' (known: {', '.join(EMULATORS)})")
    return EMULATORS[isa]


def can_emulate(isa: str) -> bool:
    """Whether this host can run ``isa``'s kernels under QEMU (the binary exists, same architecture)."""
    import platform

    emu = EMULATORS.get(isa)
    return emu is not None and emu.path() is not None and platform.machine().lower() == emu.host_arch


def emulated_embeddings(artifact: Path, images: np.ndarray, isa: str, threads: int = 1) -> np.ndarray:
    """Embeddings of ``images`` ((N, H, W, 3) uint8 RGB) computed by the artifact's runtime on ``isa``'s
    kernels under QEMU: the runner bundle, as ``edgekd bench`` runs it, with one timed run (ignored)."""
    import tempfile

    from edgekd.bench import _format
    from edgekd.bench.bundle import run_local
    from edgekd.bench.runner_script import decode_embeddings

    emulator(isa).prefix()  # no emulator here: say how to get one before any work
    fmt = _format(Path(artifact))
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
        result = run_local(job, fmt.backend, fmt.module, emulate=isa)
    return decode_embeddings(result["embeddings"])
