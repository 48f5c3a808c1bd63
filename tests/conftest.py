"""Shared fixtures: the real-data folder (skips cleanly when absent) and tiny ONNX models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path | None:
    env = os.environ.get("EDGEKD_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` (or ``$EDGEKD_SHARED``); tests using it skip with a reason when it is absent."""
    path = _shared()
    if path is None:
        pytest.skip("../shared (real LFW data and models) not present; set EDGEKD_SHARED to run")
    return path


@pytest.fixture(scope="session")
def lfw_root(shared: Path) -> Path:
    root = shared / "data" / "lfw112"
    if not (root / "pairs.txt").is_file():
        pytest.skip(f"{root}/pairs.txt not present")
    return root
