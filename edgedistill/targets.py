"""What "as good as the teacher" means, defined once for the bench, the README block and the dashboard.

An artifact is good enough when it keeps at least ``RETAINED_PCT`` percent of the teacher's
macro-F1 (the bench's ``f1_retained_pct``: artifact macro-F1 / teacher PyTorch FP32 macro-F1 x 100).
"""
from __future__ import annotations

RETAINED_PCT = 99.0
# The frontier a user reads (edgedistill/goals.py): the fastest model within 1% and within 3% of the
# teacher's macro-F1, i.e. keeping at least these percentages of it.
WITHIN_1PCT = RETAINED_PCT
WITHIN_3PCT = 97.0


def min_f1(teacher_f1: float, retained_pct: float = RETAINED_PCT) -> float:
    """The lowest macro-F1 that still keeps ``retained_pct`` percent of the teacher's."""
    return teacher_f1 * retained_pct / 100.0


def good_enough(retained: float | None, retained_pct: float = RETAINED_PCT) -> bool:
    """Whether an ``f1_retained_pct`` value meets the target (None: no teacher to compare with)."""
    return retained is not None and retained >= retained_pct


# The CPU speed targets of the headline artifact (the fastest keeping RETAINED_PCT), batch 1 at natural
# length, measured paired against the teacher in one process (bench/scenarios/paired.py). The README block and the
# bench report read them from here.
SPEEDUP_VS_TEACHER_FP32 = 12.0     # x the teacher in PyTorch FP32
SPEEDUP_VS_TEACHER_INT8 = 3.0      # x the teacher's ONNX Runtime dynamic INT8
HEADLINE_P50_MS = 0.5              # p50 latency, milliseconds
THROUGHPUT_VS_TEACHER = 3.0        # batch throughput x the teacher in PyTorch FP32
MEMORY_VS_TEACHER = 0.33           # peak serving memory / the teacher's in PyTorch FP32
# Small-data distillation (the generality suite, distill/suite.py): the least retained test macro-F1, in
# percent of the same seed's teacher, for the mean over seeds of every entry.
SUITE_RETAINED_PCT = {"odd": 98.0, "even": 98.0, "hybrid": 98.0, "lora": 95.0, "static": 95.0}
# INT8 repair (export/sensitivity.py): a repaired artifact keeps at least this share of its plain INT8
# sibling's speed-up over FP32, measured paired (repaired against plain INT8 in one process).
REPAIRED_KEEPS_SPEEDUP = 0.8
AGREE_PCT = 10.0                   # two runs (or two timing passes) agree when within this many percent
