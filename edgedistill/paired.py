"""Paired timing: a candidate and its reference in one process, in alternating short blocks.

    result = time_paired(reference_call, candidate_call, blocks=30, calls=10)
    result.median, result.low, result.high      # reference time / candidate time (> 1: candidate faster)

Two rows timed in separate processes minutes apart each see a different machine: on a shared
VM the neighbours' load moves both numbers, and their ratio moves twice. Here both models are
loaded in one process and timed block by block in ABBA order (A B, B A, A B, ...), so a slow
phase of the machine hits both sides of a block alike and a trend cancels within each pair of
blocks. Each block gives one ratio (median call time of one side / the other's); the result is
the median ratio with a bootstrap 95% interval over the blocks.

Pairing does not cure contention: under heavy load the ratio itself swings (one paired probe on
this machine moved from 14x to 61x), so every paired measurement carries the contention seen
during it (``edgedistill.contention``). A measurement primitive: the export's speed checks and the
bench's paired headline ratios (``bench.scenarios.paired``) both use it.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

CONFIDENCE = 0.95


def abba_order(blocks: int) -> list[tuple[str, str]]:
    """The order of the two sides in each block: (a, b), (b, a), (a, b), ... ("ABBA")."""
    return [("a", "b") if i % 2 == 0 else ("b", "a") for i in range(blocks)]


def bootstrap_interval(values, stat=None, level: float = CONFIDENCE, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` (default: the median) over ``values``."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to bootstrap")
    stat = stat or (lambda x: np.median(x, axis=-1))
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, values.size, size=(resamples, values.size))]
    estimates = stat(samples)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(estimates, tail)), float(np.percentile(estimates, 100 - tail))


@dataclass
class PairedResult:
    """Ratio per block = median call time of ``a`` / median call time of ``b``."""

    median: float
    low: float
    high: float
    blocks: int
    calls: int
    a_p50_ms: float
    b_p50_ms: float
    ratios: list[float]

    def to_dict(self, keep_ratios: bool = False) -> dict:
        out = asdict(self)
        if not keep_ratios:
            out.pop("ratios")
        return out


# The untimed pause before each block (see ``time_paired``). Measured on the 2-core AMD EPYC
# (teacher PyTorch FP32 vs tiny ONNX Runtime INT8, one process): without it the ratio moved 6% between
# two identical probes and 31% between two full bench runs.
SETTLE_S = 0.02


def _time_block(call: Callable[[], object], calls: int, clock) -> float:
    times = []
    for _ in range(calls):
        t0 = clock()
        call()
        times.append(clock() - t0)
    return statistics.median(times)


def time_paired(a: Callable[[], object], b: Callable[[], object], blocks: int = 30, calls: int = 10,
                warmup: int = 10, clock=time.perf_counter, settle_s: float = SETTLE_S,
                sleep=time.sleep) -> PairedResult:
    """Time ``a`` and ``b`` in ABBA blocks of ``calls`` calls each; ratio per block = a / b.

    With ``a`` the reference and ``b`` the candidate, the ratio is the candidate's speed-up.
    Before each block the process pauses ``settle_s`` (not timed) so the other side's thread pool
    stops spin-waiting first: ONNX Runtime's and PyTorch's worker threads keep spinning for a while
    after a call, and on a 2-core machine they would otherwise steal the cores from the next block.
    """
    if blocks < 2 or calls < 1:
        raise ValueError(f"paired timing needs blocks >= 2 and calls >= 1 (got {blocks}, {calls})")
    sides = {"a": a, "b": b}
    for _ in range(warmup):
        a()
        b()
    ratios, a_ms, b_ms = [], [], []
    for order in abba_order(blocks):
        block = {}
        for side in order:
            if settle_s > 0:
                sleep(settle_s)
            block[side] = _time_block(sides[side], calls, clock)
        ratios.append(block["a"] / block["b"] if block["b"] > 0 else float("inf"))
        a_ms.append(1000 * block["a"])
        b_ms.append(1000 * block["b"])
    low, high = bootstrap_interval(ratios)
    return PairedResult(statistics.median(ratios), low, high, blocks, calls, statistics.median(a_ms),
                        statistics.median(b_ms), ratios)
