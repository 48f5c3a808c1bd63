"""Every benchmark script still imports: they are run by hand, so a renamed helper would go unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_benchmark_imports():
    names = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
    assert {"kd_methods", "cakd", "common", "recipes"} <= set(names)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCHMARKS.parent), str(BENCHMARKS)])}
    run = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=BENCHMARKS, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
