"""Peak and current RSS from /proc/self/status (and the getrusage fallback)."""

from __future__ import annotations

import sys

import pytest

from edgekd.bench import memory


def test_reads_the_status_fields(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n")
    assert memory.peak_rss_mb(status) == 200.0
    assert memory.rss_mb(status) == 100.0


def test_falls_back_to_getrusage_without_proc(tmp_path):
    missing = tmp_path / "nope"
    assert memory.rss_mb(missing) is None
    peak = memory.peak_rss_mb(missing)
    assert peak is None or peak > 1  # a Python process is larger than 1 MiB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux-only")
def test_this_process():
    assert memory.peak_rss_mb() >= memory.rss_mb() > 1
