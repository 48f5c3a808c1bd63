"""AVX2 kernels natively on a VNNI CPU: CPUID with AVX-512/VNNI hidden (``cpuid_mask.c``, LD_PRELOAD).

ONNX Runtime's MLAS has no switch like oneDNN's ``ONEDNN_MAX_CPU_ISA``: it picks its int8 kernels from
CPUID once, when it loads. On Intel CPUs Linux can make CPUID trap (``arch_prctl(ARCH_SET_CPUID)``, flag
``cpuid_fault``), so a preloaded library answers CPUID without AVX-512, VNNI and AMX, and the unmodified
runtime dispatches its AVX2 kernels (``VPMADDUBSW`` with int16 pair saturation) on this core at native
speed, where QEMU Haswell is ~100× slower and gives no latency. Checked: the same embeddings as QEMU
Haswell (``tests/bench/test_cpuid_mask.py``). Its latency is AVX2 code on *this* CPU, not that of an
AVX2-only CPU (other cores, clocks, caches).

Built once with the C compiler (``$CC`` or ``cc``) into ``~/.cache/edgekd/cpuid_mask`` (or
``EDGEKD_CPUID_MASK_DIR``). ``python -m edgekd.bench.cpuid_mask`` prints the library's path, e.g. to run a
whole test suite as an AVX2 host: ``LD_PRELOAD=$(.venv/bin/python -m edgekd.bench.cpuid_mask) pytest``
(``make test-avx2``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgekd.errors import UnsupportedTargetError
from edgekd.info import cpu_flags
from edgekd.isa import X86_AVX2

SOURCE = Path(__file__).with_suffix(".c")
# What a masked process must see (numpy's runtime CPU detection reads the same CPUID the runtimes do)
PROBE = (
    "from numpy._core._multiarray_umath import __cpu_features__ as f;"
    "print(int(f['AVX2']), int(f['AVX512F']), int(f['AVX512VNNI']))"
)


def cache_dir() -> Path:
    env = os.environ.get("EDGEKD_CPUID_MASK_DIR")
    return Path(env) if env else Path.home() / ".cache" / "edgekd" / "cpuid_mask"


def _build(out: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise UnsupportedTargetError("the CPUID mask is built from C: no C compiler (set CC or install gcc)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [compiler, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE), "-ldl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UnsupportedTargetError(f"building the CPUID mask failed: {proc.stderr.strip()[-1000:]}")
    tmp.replace(out)  # atomic: concurrent builders never load a half-written library


def _probe(lib: Path) -> None:
    """Run Python under the mask: AVX2 must stay, AVX-512 and VNNI must be gone."""
    env = {**os.environ, "LD_PRELOAD": str(lib)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    if proc.returncode != 0 or proc.stdout.split() != ["1", "0", "0"]:
        raise UnsupportedTargetError(
            f"the CPUID mask did not take (AVX2, AVX512F, VNNI seen as {proc.stdout.split()}; "
            f"exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )


def library() -> Path:
    """The built, checked mask library; raises UnsupportedTargetError saying why it can't be had here."""
    lib, why = _library()
    if lib is None:
        raise UnsupportedTargetError(why)
    return lib


@functools.cache
def _library() -> tuple[Path | None, str]:
    """Built and probed once per process; a failure is remembered too (no rebuild per call)."""
    try:
        return _built_library(), ""
    except UnsupportedTargetError as err:
        return None, str(err)


def _built_library() -> Path:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise UnsupportedTargetError(f"the CPUID mask is for x86-64 hosts, not {platform.machine()}")
    flags = cpu_flags()
    for flag, why in (("avx2", "AVX2 kernels need AVX2"), ("cpuid_fault", "CPUID faulting (Intel, Linux)")):
        if flag not in flags:
            raise UnsupportedTargetError(f"the CPUID mask needs the CPU flag {flag} ({why}): not on this CPU")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    lib = cache_dir() / f"cpuid_mask-{digest}.so"
    if not lib.is_file():
        _build(lib)
    _probe(lib)
    return lib


def available() -> bool:
    return _library()[0] is not None


@dataclass(frozen=True)
class CpuidMask:
    """Any x86 runtime's AVX2 kernels, natively: this Python with the CPUID mask preloaded."""

    isa: str = X86_AVX2
    host_arch: str = "x86_64"
    how: str = "AVX2 kernels on this CPU (CPUID mask: AVX-512/VNNI hidden)"

    def path(self) -> str | None:
        return str(library()) if available() else None

    def prefix(self) -> list[str]:
        library()  # raises, saying why
        return []

    def env(self) -> dict[str, str]:
        preload = [str(library()), *filter(None, [os.environ.get("LD_PRELOAD")])]
        return {"LD_PRELOAD": ":".join(preload)}

    def command(self) -> list[str]:
        return [*self.prefix(), sys.executable]


def main() -> int:
    try:
        print(library())
    except UnsupportedTargetError as err:
        print(f"edgekd: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
