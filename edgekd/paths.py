"""Where edgekd finds optional local resources (the ``shared/`` folder of real data and models)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path | None:
    """``$EDGEKD_SHARED`` if set, else ``../shared`` from the working directory; ``None`` if absent."""
    env = os.environ.get("EDGEKD_SHARED")
    candidate = Path(env) if env else Path.cwd().parent / "shared"
    return candidate if candidate.is_dir() else None
