"""Latency statistics against a fake runner whose delays are known, on an injected clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekd.bench.latency import LatencyStats, measure, percentile


class FakeClock:
    """A clock that only moves when the fake model runs: each call takes the next scripted delay."""

    def __init__(self, delays_ms: list[float]):
        self.now = 100.0
        self.delays = list(delays_ms)
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def run(self) -> None:
        self.calls += 1
        self.now += self.delays.pop(0) / 1e3


def test_first_warmup_and_timed_runs_are_separated_and_exact():
    first, warm, timed = [50.0], [9.0, 8.0], [5.0, 1.0, 2.0, 4.0, 3.0]
    clock = FakeClock(first + warm + timed)
    t = measure(clock.run, warmup=2, runs=5, clock=clock)
    assert clock.calls == 8 and not clock.delays
    assert t.first_ms == pytest.approx(50.0) and t.warmup == 2
    assert t.samples_ms == pytest.approx(timed)
    assert t.total_s == pytest.approx(0.015)
    s = t.stats()
    assert (s.runs, s.min_ms, s.max_ms) == (5, pytest.approx(1.0), pytest.approx(5.0))
    assert s.mean_ms == pytest.approx(3.0)
    assert s.std_ms == pytest.approx(np.std(timed))  # population std, like the field's tools
    assert s.p50_ms == pytest.approx(3.0)
    assert s.p90_ms == pytest.approx(4.6)  # 1..5 sorted: rank 3.6 → 4 + 0.6·(5 − 4)
    assert s.p99_ms == pytest.approx(4.96)


def test_seconds_mode_stops_once_the_budget_is_spent():
    clock = FakeClock([7.0] + [4.0] * 10)
    t = measure(clock.run, warmup=0, seconds=0.010, clock=clock)
    assert len(t.samples_ms) == 3  # 4 + 4 = 8 ms < 10 ms, the third run reaches 12 ms
    assert clock.delays == [4.0] * 7


def test_seconds_mode_makes_at_least_one_run_and_respects_max_runs():
    clock = FakeClock([1.0, 500.0])
    assert len(measure(clock.run, warmup=0, seconds=0.001, clock=clock).samples_ms) == 1
    clock = FakeClock([1.0] * 20)
    assert len(measure(clock.run, warmup=0, seconds=10.0, clock=clock, max_runs=5).samples_ms) == 5


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy(q):
    samples = sorted(np.random.default_rng(1).exponential(3.0, 37).tolist())
    assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        measure(lambda: None, runs=3, seconds=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        measure(lambda: None)
    with pytest.raises(ValueError, match="runs must be"):
        measure(lambda: None, runs=0)
    with pytest.raises(ValueError, match="no samples"):
        LatencyStats.from_samples([])


def test_real_clock_smoke():
    t = measure(lambda: sum(range(100)), warmup=1, runs=20)
    s = t.stats()
    assert s.runs == 20 and 0 <= s.min_ms <= s.p50_ms <= s.p90_ms <= s.p99_ms <= s.max_ms


def test_field_statistics_and_minimum_duration():
    """p95/p99.9 and CV as the field's tools report them; --min-seconds keeps timing past --runs."""
    stats = LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0])
    assert stats.p95_ms == pytest.approx(3.85) and stats.p999_ms == pytest.approx(3.997)
    assert stats.cv == pytest.approx(math.sqrt(1.25) / 2.5)
    ticks = iter(range(1000))
    clock = lambda: next(ticks) * 0.5  # noqa: E731 - each call advances 0.5 s
    timing = measure(lambda: None, warmup=0, runs=2, min_seconds=10.0, clock=clock)
    assert len(timing.samples_ms) > 2 and timing.total_s >= 10.0
    with pytest.raises(ValueError, match="min_seconds"):
        measure(lambda: None, runs=1, min_seconds=-1.0)
