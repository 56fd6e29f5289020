"""What "as good as the teacher" means, defined once for the bench, the README block and the dashboard.

An artifact is good enough when it keeps at least ``RETAINED_PCT`` percent of the teacher's
macro-F1 (the bench's ``f1_retained_pct``: artifact macro-F1 / teacher PyTorch FP32 macro-F1 x 100).
"""
from __future__ import annotations

RETAINED_PCT = 99.0


def min_f1(teacher_f1: float, retained_pct: float = RETAINED_PCT) -> float:
    """The lowest macro-F1 that still keeps ``retained_pct`` percent of the teacher's."""
    return teacher_f1 * retained_pct / 100.0


def good_enough(retained: float | None, retained_pct: float = RETAINED_PCT) -> bool:
    """Whether an ``f1_retained_pct`` value meets the target (None: no teacher to compare with)."""
    return retained is not None and retained >= retained_pct
