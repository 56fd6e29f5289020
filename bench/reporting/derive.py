"""Ratios against the teacher, computed from rows of the same run and machine.

- ``speedup_vs_teacher``: p50 of teacher PyTorch FP32 / p50 of this row, on the same machine,
  device, threads, scenario, batch size and sequence length (> 1 = faster than the teacher).
- ``size_ratio_vs_fp32``: artifact size / the size of its model's ``onnx-fp32`` export.
- ``f1_retained_pct``: macro-F1 / teacher PyTorch FP32 macro-F1 x 100 (same machine and device).

A value that has no reference stays as it was (None for new rows), so re-deriving after a
merge never erases a ratio computed where its reference was available.
"""
from __future__ import annotations

from bench.schema import BenchRow

REFERENCE = {"model": "teacher", "format": "pytorch", "runtime": "pytorch", "precision": "fp32", "options": ""}


def is_reference(row: BenchRow) -> bool:
    return all(getattr(row, k) == v for k, v in REFERENCE.items())


def _timing_key(row: BenchRow) -> tuple:
    return (row.machine_id, row.device, row.threads, row.scenario, row.batch_size, row.seq_len)


def add_derived(rows: list[BenchRow], fp32_sizes_mb: dict[str, float] | None = None) -> list[BenchRow]:
    """Fill the derived columns in place; ``fp32_sizes_mb`` maps model -> onnx-fp32 size when
    that artifact was not itself measured (e.g. the GPU script, which carries sizes along)."""
    refs = {_timing_key(r): r for r in rows if is_reference(r) and r.latency_p50_ms}
    ref_f1: dict[tuple, float] = {}
    for r in rows:
        if is_reference(r) and r.macro_f1 is not None:
            ref_f1.setdefault((r.machine_id, r.device), r.macro_f1)
            ref_f1.setdefault((r.machine_id, None), r.macro_f1)
    sizes = dict(fp32_sizes_mb or {})
    for r in rows:
        if r.variant == "onnx-fp32" and r.size_mb:
            sizes.setdefault(r.model, r.size_mb)
    for r in rows:
        ref = refs.get(_timing_key(r))
        if ref is not None and r.latency_p50_ms:
            r.speedup_vs_teacher = ref.latency_p50_ms / r.latency_p50_ms
        base = sizes.get(r.model)
        if base and r.size_mb is not None:
            r.size_ratio_vs_fp32 = r.size_mb / base
        f1 = ref_f1.get((r.machine_id, r.device), ref_f1.get((r.machine_id, None)))
        if f1 and r.macro_f1 is not None:
            r.f1_retained_pct = 100.0 * r.macro_f1 / f1
    return rows
