"""The runner bundle (the self-contained files a machine needs to measure an artifact) and local runs.

A local run copies the bundle into a temporary folder and runs it with this Python in a fresh process,
exactly as :mod:`edgekd.bench.remote` runs it on a device, so both measure the same way and the
process's peak RSS belongs to the model alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgekd.errors import ModelError, UnsupportedTargetError

HERE = Path(__file__).resolve().parent
BUNDLE = ("runner_script.py", "latency.py", "memory.py")  # + the format's backend file
EXIT_RUNTIME_MISSING = 3  # runner_script's exit statuses
EXIT_BAD_INPUT = 4


def bundle_files(backend: str) -> list[Path]:
    """Paths of the runner, its helpers and ``backend``'s file (e.g. ``device_ort``)."""
    files = [HERE / name for name in (*BUNDLE, f"{backend}.py")]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise UnsupportedTargetError(f"runner backend files missing from edgekd/bench: {', '.join(missing)}")
    return files


def write_bundle(folder: Path, backend: str) -> Path:
    """Copy the bundle into ``folder``; returns the runner script's path there."""
    for f in bundle_files(backend):
        shutil.copy2(f, folder / f.name)
    return folder / "runner_script.py"


def runner_outcome(rc: int, stderr: str, result_path: Path, where: str, module: str) -> dict:
    """The runner's result, or the typed error its exit status stands for."""
    tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
    if rc == EXIT_RUNTIME_MISSING:
        raise UnsupportedTargetError(
            f"{tail} ({where}). Install it there (pip install {module}) or benchmark elsewhere."
        )
    if rc == EXIT_BAD_INPUT:
        raise ModelError(f"the benchmark runner rejected the job on {where}: {tail}")
    if rc != 0 or not result_path.is_file():
        raise ModelError(
            f"the benchmark runner failed on {where} (exit status {rc}): {stderr.strip()[-2000:]}"
        )
    return json.loads(result_path.read_text())


def run_local(
    job: dict,
    backend: str,
    module: str,
    timeout_s: float | None = None,
    emulate: str | None = None,
    native: bool = True,
    cpu: str | None = None,
) -> dict:
    """Run ``job`` (absolute paths) in a fresh local process; returns the runner's result dict.
    ``emulate``: another ISA's kernels (:mod:`edgekd.bench.emulation`): the backend's own dispatch limit
    where it has one and ``native``, else QEMU user-mode emulation."""
    import os

    from edgekd.bench.emulation import emulator

    command, env, where = [sys.executable], None, "this host"
    if emulate is not None:
        emu = emulator(emulate, backend if native else None, cpu)
        command, env = emu.command(), {**os.environ, **emu.env()}
        where = f"this host, {emulate} via {emu.how}"
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-") as tmp:
        folder = Path(tmp)
        runner = write_bundle(folder, backend)
        (folder / "job.json").write_text(json.dumps(job))
        out = folder / "result.json"
        try:
            proc = subprocess.run(
                [
                    *command,
                    str(runner),
                    "--config",
                    str(folder / "job.json"),
                    "--out",
                    str(out),
                ],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise ModelError(f"the local benchmark did not finish within {timeout_s:.0f} s") from None
        return runner_outcome(proc.returncode, proc.stderr, out, where, module)
