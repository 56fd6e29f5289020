"""How fast the machine itself is at the moment: single-thread memory-streaming bandwidth.

At batch 1 every call reads all of a model's weights (about 90 MB for an FP32 MiniLM) as well as
doing its arithmetic. On a shared cloud VM the memory bandwidth and CPU time that the neighbours
leave move from second to second, and every timing moves with them. The bench measures the
bandwidth just before and just after each job and records both, so a reader can tell a spread
that comes from the artifact from one that comes from the machine.

The probe sums a 128 MB buffer with one thread: more than a MiniLM-size model's FP32 weights
(about 90 MB), so it takes the same path through the shared last-level cache and memory that the
weights take (numpy reductions use no thread pool, so no spinning worker threads are left to
disturb the next job). It runs in the bench's parent process, between jobs: its buffer must
never count towards a worker's peak memory.
"""
from __future__ import annotations

import statistics
import time

PROBE_MB = 128


class BandwidthProbe:
    """``gbs()``: median GB/s of repeated single-thread sums over a ``mb``-MB buffer."""

    def __init__(self, mb: int = PROBE_MB):
        import numpy as np

        self.buffer = np.ones(mb * 2 ** 20 // 4, dtype=np.float32)   # ones: the pages are really mapped
        self.bytes = self.buffer.nbytes

    def gbs(self, seconds: float, min_calls: int = 3) -> float:
        times = []
        end = time.perf_counter() + seconds
        while len(times) < min_calls or time.perf_counter() < end:
            t0 = time.perf_counter()
            self.buffer.sum()
            times.append(time.perf_counter() - t0)
        return self.bytes / 1e9 / statistics.median(times)


def change_pct(before: float, after: float) -> float:
    """How much the bandwidth moved across a job, as max / min - 1 in %."""
    lo, hi = sorted((before, after))
    return 100.0 * (hi / lo - 1.0) if lo > 0 else float("inf")
