"""Where edgekd finds optional local resources (the ``shared/`` folder of real data and models)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path | None:
    """``$EDGEKD_SHARED`` if set, else ``../shared`` from the working directory; ``None`` if absent."""
    env = os.environ.get("EDGEKD_SHARED")
    candidate = Path(env) if env else Path.cwd().parent / "shared"
    return candidate if candidate.is_dir() else None


def targets_dir() -> Path:
    """The declarative ``targets/`` folder (target specs, ``profiles/``).

    In a source checkout (editable install) it is the repository's top-level ``targets/``; wheels ship
    the same files as package data under ``edgekd/targets``.
    """
    packaged = Path(__file__).resolve().parent / "targets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "targets"
