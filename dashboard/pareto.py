"""Trade-off helpers over bench rows: the Pareto frontier and the best artifact for each goal (the
bench report's own computation, ``edgedistill.goals``).

Inputs are rows already narrowed to one machine, device, thread count, batch size and sequence
length (``dashboard.select``), so every latency compared here was measured under the same
conditions. Values are read from the rows as the bench wrote them.
"""
from __future__ import annotations

import math

import pandas as pd

from edgedistill import goals
from edgedistill.targets import RETAINED_PCT


def pareto_mask(df: pd.DataFrame, cost: str, score: str) -> pd.Series:
    """True for rows no other row beats: nothing has lower-or-equal ``cost`` and strictly higher ``score``
    (or strictly lower cost and equal score). Rows with a missing value are never on the frontier."""
    mask = pd.Series(False, index=df.index)
    ok = df[[cost, score]].dropna()
    # Sort by cost, best score first among equal costs; a row is on the frontier when it beats the
    # best score seen at any lower cost.
    best = -math.inf
    for idx, row in ok.sort_values([cost, score], ascending=[True, False]).iterrows():
        if row[score] > best:
            mask[idx] = True
            best = row[score]
    return mask


def pareto_front(df: pd.DataFrame, cost: str, score: str) -> pd.DataFrame:
    """The frontier rows, ordered by cost, ready to draw as a step line."""
    return df[pareto_mask(df, cost, score)].sort_values(cost)


def teacher_reference(rows: pd.DataFrame, models: pd.DataFrame | None = None) -> tuple[float | None, str]:
    """The teacher's macro-F1 that the retained-F1 target refers to, and where it came from.

    The bench's own reference (``edgedistill.goals.reference_f1``: the teacher PyTorch FP32 row, or
    recovered from the rows' retained share, as the bench report does) is preferred; the training
    stage's test macro-F1 is the fallback when the teacher was not benchmarked at all.
    """
    if len(rows):
        points = [row for _, row in rows.iterrows()]
        if goals.teacher_f1(points) is not None:
            return goals.teacher_f1(points), "teacher PyTorch FP32 (bench)"
        ref = goals.reference_f1(points)
        if ref is not None:
            return ref, "teacher PyTorch FP32 (bench, from the rows' retained share)"
    if models is not None and len(models):
        t = models.loc[models["method"] == "teacher", "macro_f1"].dropna()
        if len(t):
            return float(t.iloc[0]), "teacher (training stage, test split)"
    return None, "no teacher result"


GOALS = goals.GOALS     # the bench report's goals: one computation (edgedistill/goals.py) for both


def best_per_goal(rows: pd.DataFrame, reference_f1: float | None, retained_pct: float = RETAINED_PCT,
                  latency: str = "latency_p50_ms") -> dict[str, pd.Series | None]:
    """The winning row for each goal in GOALS; None where no row qualifies.

    ``edgedistill.goals.goal_winners`` over these rows, as the bench report computes it: most accurate,
    fastest within ``retained_pct`` (default the 1% target) and within 3% of ``reference_f1``, smallest
    within ``retained_pct``. Fastest follows the paired speed-up over the teacher where the bench measured one.
    """
    points = [row for _, row in rows.iterrows()]
    return goals.goal_winners(points, reference_f1, near_pct=retained_pct, latency=latency)


def baselines(rows: pd.DataFrame, reference_f1: float | None, winners: dict,
              latency: str = "latency_p50_ms") -> list[dict]:
    """Where each peer baseline sits among these rows (``edgedistill.goals.baseline_standing``)."""
    return goals.baseline_standing([row for _, row in rows.iterrows()], reference_f1, winners, latency)


def spans_decades(values, ratio: float = 10.0) -> bool:
    """Whether positive values spread over at least a factor ``ratio``: then a log axis reads better."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    v = v[v > 0]
    return len(v) >= 2 and v.max() / v.min() >= ratio
