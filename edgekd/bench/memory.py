"""Resident memory of this process (self-contained: standard library only, shipped to devices).

Linux reports the current (``VmRSS``) and peak (``VmHWM``, high-water mark) resident set in
``/proc/self/status``; elsewhere ``resource.getrusage`` gives the peak (kB on Linux, bytes on macOS).
"""

from __future__ import annotations

import sys
from pathlib import Path

STATUS = Path("/proc/self/status")


def _status_kb(field: str, status: Path = STATUS) -> float | None:
    try:
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb(status: Path = STATUS) -> float | None:
    """Peak resident set size of this process in MiB (``None`` if the platform cannot tell)."""
    kb = _status_kb("VmHWM", status)
    if kb is not None:  # the kernel updates the high-water mark lazily: never report less than now
        return max(kb, _status_kb("VmRSS", status) or 0.0) / 1024
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def rss_mb(status: Path = STATUS) -> float | None:
    """Current resident set size in MiB (``None`` where ``/proc`` is missing)."""
    kb = _status_kb("VmRSS", status)
    return kb / 1024 if kb is not None else None
