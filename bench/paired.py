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
during it (``bench/contention.py``).

``python -m bench.paired JOB.json RESULT.json`` runs the bench's paired job: the references
and the headline candidates loaded in one worker (see ``bench.runner.run_paired``).
"""
from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgedistill.targets import RETAINED_PCT

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


# --- the bench's paired job ------------------------------------------------------------------

def measure_pairs(spec: dict) -> dict:
    """Load every runtime named in ``spec`` once, then time each (reference, candidate) pair."""
    from bench.contention import Sampler
    from edgedistill.runtime import RUNTIMES

    inputs = json.loads(Path(spec["inputs"]).read_text())
    loaded: dict[str, object] = {}
    for name, entry in spec["models"].items():
        loaded[name] = RUNTIMES[entry["runtime"]].load(entry["folder"], device="cpu", threads=spec["threads"],
                                                       precision=entry.get("precision"))
        print(f"loaded {name}", flush=True)

    def target(name: str):
        rt = loaded[name]
        batches = [rt.encode([t]) for t in inputs["natural_texts"]]
        forward, cycle = rt.forward, itertools.cycle(batches)
        return lambda: forward(next(cycle))

    pairs = []
    for pair in spec["pairs"]:
        sampler = Sampler()
        result = time_paired(target(pair["reference"]), target(pair["candidate"]), blocks=spec["blocks"],
                             calls=spec["calls"], warmup=spec.get("warmup", 10))
        pairs.append({**pair, **result.to_dict(), "contention": sampler.stop()})
        print(f"{pair['candidate']} vs {pair['reference']}: {result.median:.2f}x "
              f"[{result.low:.2f}, {result.high:.2f}]", flush=True)
    return {"ok": True, "pairs": pairs, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    try:
        result = measure_pairs(json.loads(spec_path.read_text()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which writes the other rows regardless
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result_path.write_text(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())


# --- choosing the pairs and writing them into rows (the bench's parent process) -----------------

REFERENCES = {"teacher_fp32": {"artifact": "teacher/pytorch", "runtime": "pytorch", "precision": "fp32", "options": ""},
              "teacher_int8": {"artifact": "teacher/onnx-int8-dynamic", "runtime": "onnxruntime", "precision": "int8",
                               "options": ""}}
COLUMNS = {"teacher_fp32": "paired_speedup_vs_teacher", "teacher_int8": "paired_speedup_vs_teacher_int8"}


def _is_headline(row) -> bool:
    return row.scenario == "latency" and row.batch_size == 1 and row.seq_len == "natural" and row.device == "cpu"


def _matches(row, ref: dict) -> bool:
    return all(getattr(row, k) == v for k, v in ref.items())


def choose_pairs(rows, row_jobs: dict, top: int) -> dict[int, dict]:
    """Per thread count, the worker spec's ``models`` and ``pairs``: the ``top`` fastest artifacts
    (batch 1, natural length, CPU) keeping >= RETAINED_PCT% of the teacher's macro-F1, each against
    every reference that was measured. ``row_jobs`` maps a row's key_text to its bench Job."""
    out: dict[int, dict] = {}
    headline = [r for r in rows if _is_headline(r) and r.key_text() in row_jobs]
    for threads in sorted({r.threads for r in headline}):
        here = [r for r in headline if r.threads == threads]
        refs = {kind: next((r for r in here if _matches(r, ref)), None) for kind, ref in REFERENCES.items()}
        refs = {k: r for k, r in refs.items() if r is not None}
        ref_keys = {r.key_text() for r in refs.values()}
        good = [r for r in here if r.key_text() not in ref_keys and r.latency_p50_ms
                and (r.f1_retained_pct or 0) >= RETAINED_PCT]
        candidates = sorted(good, key=lambda r: r.latency_p50_ms)[:top]
        pairs = [{"candidate": c.key_text(), "reference": ref.key_text(), "reference_kind": kind}
                 for c in candidates for kind, ref in refs.items()]
        if len(refs) == 2:   # the INT8 reference is itself a headline: its speed-up over the FP32 one
            pairs.append({"candidate": refs["teacher_int8"].key_text(), "reference": refs["teacher_fp32"].key_text(),
                          "reference_kind": "teacher_fp32"})
        if not pairs:
            continue
        models = {}
        for r in list(refs.values()) + candidates:
            job = row_jobs[r.key_text()]
            models[r.key_text()] = {"runtime": job.runtime, "folder": job.artifact.folder, "precision": job.precision}
        out[threads] = {"models": models, "pairs": pairs}
    return out


def apply_pairs(rows, pairs: list[dict]) -> None:
    """Write each pair's median and interval into the candidate row's paired columns."""
    by_key = {r.key_text(): r for r in rows}
    for p in pairs:
        row, column = by_key.get(p["candidate"]), COLUMNS.get(p.get("reference_kind"))
        if row is None or column is None:
            continue
        setattr(row, column, p["median"])
        setattr(row, column + "_low", p["low"])
        setattr(row, column + "_high", p["high"])
