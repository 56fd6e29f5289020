"""Numbers to trust on a shared machine: paired ABBA timing, its bootstrap interval, contention."""
from __future__ import annotations

import numpy as np
import pytest

from bench.contention import Sampler, is_disturbed, read_cpu_times, summarize
from bench.paired import abba_order, bootstrap_interval, time_paired


def test_abba_order_alternates_which_side_goes_first():
    assert abba_order(4) == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    flat = "".join(x for block in abba_order(6) for x in block)
    assert flat == "ABBAABBAABBA".lower()


def test_bootstrap_interval_covers_a_known_ratio():
    rng = np.random.default_rng(1)
    ratios = 3.0 * np.exp(rng.normal(0.0, 0.05, size=200))          # median ratio 3, 5% noise
    low, high = bootstrap_interval(ratios)
    assert low < 3.0 < high and high - low < 0.1
    wide = bootstrap_interval(3.0 * np.exp(rng.normal(0.0, 0.5, size=10)))
    assert wide[1] - wide[0] > high - low                             # fewer, noisier blocks: wider
    with pytest.raises(ValueError):
        bootstrap_interval([])


class FakeClock:
    """A clock that the timed calls advance; ``load`` multiplies every duration (a busy machine)."""

    def __init__(self):
        self.now, self.load, self.calls = 0.0, 1.0, []

    def __call__(self):
        return self.now

    def work(self, name, seconds):
        def call():
            self.calls.append(name)
            self.now += seconds * self.load
            self.load *= 1.01             # the machine slows down steadily while we time
        return call


def test_paired_timing_cancels_a_drifting_machine_and_runs_abba():
    clock = FakeClock()
    ref, cand = clock.work("ref", 0.003), clock.work("cand", 0.001)
    result = time_paired(ref, cand, blocks=8, calls=3, warmup=0, clock=clock)
    # Separately, the drift would inflate whichever side ran later; per block the ratio stays ~3.
    assert result.median == pytest.approx(3.0, rel=0.05) and result.low <= result.median <= result.high
    assert len(result.ratios) == 8 and result.calls == 3
    firsts = [clock.calls[i] for i in range(0, len(clock.calls), 3)]
    assert firsts[:4] == ["ref", "cand", "cand", "ref"]               # A B | B A | ...
    with pytest.raises(ValueError):
        time_paired(ref, cand, blocks=1)


STAT = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\n"


def test_contention_reader_on_a_fake_proc_stat(tmp_path):
    path = tmp_path / "stat"
    path.write_text(STAT.format(user=1000, system=200, idle=5000, steal=10))
    before = read_cpu_times(path)
    assert before["user"] == 1000 and before["steal"] == 10 and before["idle"] == 5000
    # 10 s on 2 cores = 2000 jiffies at 100 Hz: 1400 busy (user + system), 50 steal, 550 idle.
    path.write_text(STAT.format(user=2200, system=400, idle=5550, steal=60))
    after = read_cpu_times(path)
    out = summarize(before, after, own_s=4.0, wall_s=10.0, cores=2, load1=3.5)
    assert out["steal_pct"] == pytest.approx(2.5)
    assert out["own_cpu_pct"] == pytest.approx(20.0)                # 4 s of 20 core-seconds
    assert out["other_cpu_pct"] == pytest.approx(50.0)              # 14 s busy - 4 s ours = 10 of 20
    assert is_disturbed(out) is True
    quiet = summarize(before, after, own_s=13.5, wall_s=10.0, cores=2)
    assert quiet["other_cpu_pct"] == pytest.approx(2.5) and is_disturbed(quiet) is False
    assert is_disturbed({**quiet, "steal_pct": 9.0}) is True          # the hypervisor took the cores
    assert read_cpu_times(tmp_path / "missing") is None
    assert is_disturbed(summarize(None, after, 1.0, 1.0, 2)) is None  # not measured: not flagged


def test_sampler_measures_this_process(tmp_path):
    import time

    sampler = Sampler()
    start = time.process_time()
    while time.process_time() - start < 0.3:     # CPU work of our own, well above the 10 ms tick
        sum(i * i for i in range(10_000))
    out = sampler.stop()
    assert out["wall_s"] > 0 and out["cores"] >= 1
    if read_cpu_times() is not None:
        assert 0 <= out["other_cpu_pct"] <= 100 and out["own_cpu_pct"] > 0
