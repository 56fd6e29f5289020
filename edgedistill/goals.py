"""Which measured model wins each goal a user reads, computed once for the bench report and the dashboard.

    winners = goal_winners(points, teacher_f1)
    winners["fastest_1pct"]       # the fastest point keeping >= 99% of the teacher's macro-F1 (or None)
    baseline_standing(points, teacher_f1, winners)   # where each peer baseline sits, and what it wins

``points`` are bench rows measured under one set of conditions (one machine, device, thread count,
batch size and sequence length): ``bench.schema.BenchRow`` objects in the bench report, pandas rows
in the dashboard; both are read through the same field names, so the two name the same winners.

Goals: ``accurate`` (highest macro-F1), ``fastest_1pct`` and ``fastest_3pct`` (the fastest keeping
``targets.WITHIN_1PCT`` / ``targets.WITHIN_3PCT`` percent of the teacher's macro-F1) and ``smallest``
(the smallest keeping ``WITHIN_1PCT``). Fastest is the largest paired speed-up over the teacher where
the bench timed candidates side by side with it (``paired_speedup_vs_teacher``, the trusted measure),
otherwise the lowest p50; ``candidates`` names the rows the paired timing covers so that every goal's
true winner is among them. The points are the headline scenario's (``edgedistill.scenarios``: text ->
label where measured). Baselines (``edgedistill.methods.BASELINES``) compete like every model:
when one wins, ``baseline_wins`` says so. Nothing heavy is imported.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from edgedistill.methods import BASELINES, TEACHER
from edgedistill.targets import WITHIN_1PCT, WITHIN_3PCT, min_f1

GOALS: dict[str, str] = {
    "accurate": "Most accurate",
    "fastest_1pct": "Fastest within 1% of the teacher",
    "fastest_3pct": "Fastest within 3% of the teacher",
    "smallest": "Smallest within 1% of the teacher",
}


def value(point, key: str) -> float | str | None:
    """A field of a bench row, a dict or a pandas row; missing and NaN read as None."""
    v = point.get(key) if hasattr(point, "get") else getattr(point, key, None)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def teacher_f1(points: Sequence) -> float | None:
    """The teacher PyTorch FP32 macro-F1 among ``points`` (what ``f1_retained_pct`` divides by)."""
    for p in points:
        if (value(p, "model") == TEACHER and value(p, "format") == "pytorch" and value(p, "precision") == "fp32"
                and value(p, "macro_f1") is not None):
            return float(value(p, "macro_f1"))
    return None


def reference_f1(points: Sequence) -> float | None:
    """The macro-F1 the goals are measured against: the teacher PyTorch FP32 row's, or, when the teacher
    was not timed under these conditions, recovered from any row's ``f1_retained_pct`` (which the bench
    computed against that same teacher row). None when neither is there."""
    ref = teacher_f1(points)
    if ref is not None:
        return ref
    for p in points:
        f1, pct = value(p, "macro_f1"), value(p, "f1_retained_pct")
        if f1 is not None and pct:
            return 100 * float(f1) / float(pct)
    return None


def keeps(point, reference_f1: float | None, retained_pct: float) -> bool:
    """Whether ``point`` keeps ``retained_pct`` percent of ``reference_f1`` (a hair of slack for rounding);
    a row without its own macro-F1 is read by the share the bench derived for it (``f1_retained_pct``)."""
    f1 = value(point, "macro_f1")
    if f1 is None:
        retained = value(point, "f1_retained_pct")
        return retained is not None and retained >= retained_pct - 1e-9
    return reference_f1 is not None and f1 >= min_f1(reference_f1, retained_pct) - 1e-9


def fastest(points: Sequence, latency: str = "latency_p50_ms"):
    """The fastest of ``points`` that ships for its speed (a ``size_only`` INT8 artifact, slower than its FP32
    source, never wins a speed goal, nor does a point timed on an emulated CPU, ``emulated``): the largest paired
    speed-up over the teacher among the rows the bench paired, unless a row it did not pair shows a lower latency
    than that winner's own, which then wins: a row is never dropped for not having been paired. Without paired
    rows, the lowest latency (ties: the more accurate)."""
    timed = [p for p in points if not value(p, "size_only") and not value(p, "emulated")]
    paired = [p for p in timed if value(p, "paired_speedup_vs_teacher")]
    best = max(paired, key=lambda p: (value(p, "paired_speedup_vs_teacher"), value(p, "macro_f1") or 0.0),
               default=None)
    unpaired = [p for p in timed if not value(p, "paired_speedup_vs_teacher") and value(p, latency) is not None]
    quickest = min(unpaired, key=lambda p: (value(p, latency), -(value(p, "macro_f1") or 0.0)), default=None)
    if best is None:
        return quickest
    if quickest is not None and value(best, latency) is not None and value(quickest, latency) < value(best, latency):
        return quickest
    return best


def candidates(points: Sequence, reference_f1: float | None, top: int, latency: str = "latency_p50_ms") -> list:
    """The rows a paired timing must cover for every goal to be decided on it: the ``top`` fastest (by
    ``latency``) of each speed goal's qualifying rows, the smallest keeping ``WITHIN_1PCT``, and each model's
    fastest row keeping ``WITHIN_3PCT``. In the order found, each row once; ``size_only`` rows left out."""
    timed = [p for p in points if value(p, latency) is not None and not value(p, "size_only")]
    by_speed = sorted(timed, key=lambda p: value(p, latency))
    out: list = []

    def add(p):
        if p is not None and not any(p is q for q in out):
            out.append(p)

    for pct in (WITHIN_1PCT, WITHIN_3PCT):
        for p in [p for p in by_speed if keeps(p, reference_f1, pct)][:top]:
            add(p)
    near = [p for p in timed if keeps(p, reference_f1, WITHIN_1PCT) and value(p, "size_mb") is not None]
    add(min(near, key=lambda p: (value(p, "size_mb"), value(p, latency)), default=None))
    for model in dict.fromkeys(value(p, "model") for p in by_speed):
        add(next((p for p in by_speed if value(p, "model") == model and keeps(p, reference_f1, WITHIN_3PCT)), None))
    return out


def goal_winners(points: Sequence, reference_f1: float | None, near_pct: float = WITHIN_1PCT,
                 far_pct: float = WITHIN_3PCT, latency: str = "latency_p50_ms") -> dict:
    """The winning point per goal in GOALS (None where nothing qualifies); see the module doc."""
    out: dict = dict.fromkeys(GOALS)
    scored = [p for p in points if value(p, "macro_f1") is not None]
    if not scored:
        return out
    out["accurate"] = max(scored, key=lambda p: (value(p, "macro_f1"), -(value(p, latency) or math.inf)))
    near = [p for p in scored if keeps(p, reference_f1, near_pct)]
    far = [p for p in scored if keeps(p, reference_f1, far_pct)]
    out["fastest_1pct"] = fastest(near, latency)
    out["fastest_3pct"] = fastest(far, latency)
    sized = [p for p in near if value(p, "size_mb") is not None]
    out["smallest"] = min(sized, key=lambda p: (value(p, "size_mb"), -value(p, "macro_f1")), default=None)
    return out


def baseline_standing(points: Sequence, reference_f1: float | None, winners: dict,
                      latency: str = "latency_p50_ms") -> list[dict]:
    """Each baseline's best point (by macro-F1): its retained share of the teacher, its place among
    all models by macro-F1, and the goals it wins. In registry order."""
    scored = [p for p in points if value(p, "macro_f1") is not None]
    best_per_model: dict = {}
    for p in scored:
        m = value(p, "model")
        if m not in best_per_model or value(p, "macro_f1") > value(best_per_model[m], "macro_f1"):
            best_per_model[m] = p
    ranking = sorted(best_per_model, key=lambda m: -value(best_per_model[m], "macro_f1"))
    out = []
    for name in BASELINES:
        p = best_per_model.get(name)
        if p is None:
            continue
        f1 = value(p, "macro_f1")
        out.append({"model": name, "point": p, "macro_f1": f1,
                    "retained_pct": 100 * f1 / reference_f1 if reference_f1 else None,
                    "latency": value(p, latency), "rank": ranking.index(name) + 1, "of": len(ranking),
                    "wins": [g for g, w in winners.items() if w is not None and value(w, "model") == name]})
    return out


def baseline_wins(winners: dict) -> dict[str, str]:
    """goal -> baseline name, for every goal a baseline wins."""
    return {g: value(w, "model") for g, w in winners.items() if w is not None and value(w, "model") in BASELINES}
