"""Latency statistics and the timing loop, as the field's tools report them.

Self-contained (standard library only): this file is shipped to devices with the runner
(:mod:`edgekd.bench.runner_script`), so it must not import edgekd, numpy or a runtime.

The protocol follows TFLite ``benchmark_model``, ``onnxruntime_perf_test``, OpenVINO ``benchmark_app``
and MLPerf single-stream: the first inference is timed on its own (it pays for lazy allocation and
kernel selection), ``warmup`` runs are discarded, then runs are timed one by one until ``runs`` were made
or ``seconds`` have passed (with ``min_seconds``, also until that much time has passed: MLPerf's and
benchmark_app's minimum duration). Reported: min / mean / std (population) / p50 / p90 / p95 / p99 /
p99.9 / max in milliseconds (p90 is MLPerf's single-stream metric; onnxruntime_perf_test's percentiles)
and the coefficient of variation std/mean (trtexec warns when it is high). The clock is injectable so
tests are exact.

>>> t = measure(lambda: None, warmup=2, runs=10)
>>> t.stats().runs
10
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

Clock = Callable[[], float]  # seconds, monotonic


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """``q``-th percentile (0..100) of sorted samples, linear between closest ranks (NumPy's default)."""
    if not sorted_ms:
        raise ValueError("no samples")
    k = (len(sorted_ms) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (k - lo)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of timed runs, all in milliseconds."""

    runs: int
    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    p95_ms: float = math.nan
    p999_ms: float = math.nan
    cv: float = math.nan  # std / mean

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        s = sorted(samples_ms)
        n = len(s)
        if n == 0:
            raise ValueError("no samples")
        mean = sum(s) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in s) / n)
        p = {q: percentile(s, q) for q in (50, 90, 95, 99, 99.9)}
        cv = std / mean if mean > 0 else math.nan
        return cls(n, s[0], mean, std, p[50], p[90], p[99], s[-1], p[95], p[99.9], cv)

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Timing:
    """What :func:`measure` saw: the first call, the warm-up count, each timed call, the timed wall time."""

    first_ms: float
    warmup: int
    samples_ms: list[float]
    total_s: float

    def stats(self) -> LatencyStats:
        return LatencyStats.from_samples(self.samples_ms)


def measure(
    fn: Callable[[], object],
    *,
    warmup: int = 5,
    runs: int | None = None,
    seconds: float | None = None,
    clock: Clock = time.perf_counter,
    max_runs: int = 1_000_000,
    min_seconds: float | None = None,
) -> Timing:
    """Time ``fn``: once cold, ``warmup`` times discarded, then ``runs`` times or for ``seconds``, and in
    any case until ``min_seconds`` have passed.

    With ``seconds`` at least one timed run is made, and at most ``max_runs``.
    """
    if (runs is None) == (seconds is None):
        raise ValueError("give exactly one of runs or seconds")
    if (runs is not None and runs < 1) or (seconds is not None and seconds <= 0) or warmup < 0:
        raise ValueError(f"runs must be >= 1, seconds > 0 and warmup >= 0 (got {runs}, {seconds}, {warmup})")
    t0 = clock()
    fn()
    first_ms = (clock() - t0) * 1e3
    for _ in range(warmup):
        fn()
    if min_seconds is not None and min_seconds < 0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds}")
    samples: list[float] = []
    start = end = clock()
    while len(samples) < max_runs:
        enough = len(samples) >= runs if runs is not None else False
        if enough and (min_seconds is None or end - start >= min_seconds):
            break
        t = clock()
        fn()
        end = clock()
        samples.append((end - t) * 1e3)
        if (
            seconds is not None
            and end - start >= seconds
            and (min_seconds is None or end - start >= min_seconds)
        ):
            break
    return Timing(first_ms, warmup, samples, clock() - start)
