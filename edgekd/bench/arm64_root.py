"""An emulated ARM64 device: a Debian arm64 root with Python, numpy and the runtimes, run under QEMU.

For tests and for users without a board. ``build`` makes, once, in ``~/.cache/edgekd/arm64`` (or
``EDGEKD_ARM64_ROOT``):

1. ``root/``: ``debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm``, then
   ``dpkg -x`` of its cached ``.deb`` files (no chroot, no binfmt: QEMU's ``-L root`` finds the loader
   and libraries there);
2. ``site/``: aarch64 wheels from PyPI for CPython 3.11 (``pip install --target --platform``): numpy,
   onnxruntime **1.20.1** (1.31.1 segfaults on import under Debian's QEMU 7.2), openvino, and
   ai-edge-litert **1.4.0** (the newest with a cp311 aarch64 wheel; 2.x has none).

The runner then runs as ``qemu-aarch64-static -L root root/usr/bin/python3.11`` with ``QEMU_CPU`` set
to the profile's core (``cortex-a72`` for a Pi 4, ``cortex-a76`` for a Pi 5). Its embeddings are the
ARM kernels' (real numbers); its latency is instruction-level emulation, never a device latency.

    python -m edgekd.bench.arm64_root build      # ~1 min with a fast mirror; `make arm64-device`
    python -m edgekd.bench.arm64_root status
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from edgekd.errors import UnsupportedTargetError

SUITE = "bookworm"
PYTHON = "usr/bin/python3.11"
WHEELS = ("numpy==2.4.6", "onnxruntime==1.20.1", "openvino==2026.4.1", "ai-edge-litert==1.4.0")
PLATFORMS = (*(f"manylinux_2_{g}_aarch64" for g in (17, 28, 31, 34, 35)), "manylinux2014_aarch64")
DONE = ".edgekd-complete"


def default_dir() -> Path:
    env = os.environ.get("EDGEKD_ARM64_ROOT")
    return Path(env) if env else Path.home() / ".cache" / "edgekd" / "arm64"


def is_built(folder: Path | None = None) -> bool:
    folder = folder or default_dir()
    return (folder / DONE).is_file() and (folder / "root" / PYTHON).is_file()


def python_command(folder: Path | None = None) -> list[str]:
    """The device's Python under QEMU; an error with the next step when the root is not built."""
    folder = folder or default_dir()
    qemu = shutil.which("qemu-aarch64-static")
    if qemu is None:
        raise UnsupportedTargetError(
            "the emulated ARM64 device needs qemu-aarch64-static: apt-get install qemu-user-static"
        )
    if not is_built(folder):
        raise UnsupportedTargetError(
            f"the emulated ARM64 device is not built in {folder}: run `make arm64-device` "
            "(python -m edgekd.bench.arm64_root build; needs debootstrap and network to Debian and PyPI)"
        )
    root = folder / "root"
    return [qemu, "-L", str(root), str(root / PYTHON)]


def environment(cpu: str, folder: Path | None = None) -> dict[str, str]:
    folder = folder or default_dir()
    return {"QEMU_CPU": cpu, "PYTHONPATH": str(folder / "site"), "PYTHONNOUSERSITE": "1"}


def build(folder: Path | None = None) -> Path:
    """Make the root and the wheels folder (idempotent: a complete build is kept)."""
    folder = folder or default_dir()
    if is_built(folder):
        return folder
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).is_file():
        raise UnsupportedTargetError("building the ARM64 root needs debootstrap: apt-get install debootstrap")
    root = folder / "root"
    folder.mkdir(parents=True, exist_ok=True)
    _run(
        [
            debootstrap,
            "--foreign",
            "--arch=arm64",
            "--variant=minbase",
            "--include=python3",
            SUITE,
            str(root),
        ],
        "debootstrap",
    )
    for deb in sorted((root / "var/cache/apt/archives").glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(root)], f"dpkg -x {deb.name}")
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    _run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(folder / "site"), *platforms,
         "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", *WHEELS],
        "pip install (aarch64 wheels)",
    )  # fmt: skip
    (folder / DONE).write_text("\n".join(WHEELS) + "\n")
    return folder


def _run(cmd: list[str], what: str) -> None:
    env = {**os.environ, "PIP_CONSTRAINT": ""}  # the host's constraints pin x86 builds, not these
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise UnsupportedTargetError(f"building the ARM64 device failed at {what}:\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["build"]:
        print(f"built: {build()}")
        return 0
    if args[:1] == ["status"]:
        folder = default_dir()
        print(f"{folder}: {'built' if is_built(folder) else 'not built (make arm64-device)'}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
