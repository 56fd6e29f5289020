"""Trade-off helpers over bench rows: the Pareto frontier and the best artifact for each goal.

Inputs are rows already narrowed to one machine, device, thread count, batch size and sequence
length (``dashboard.select``), so every latency compared here was measured under the same
conditions. Values are read from the rows as the bench wrote them.
"""
from __future__ import annotations

import math

import pandas as pd

from edgedistill.targets import RETAINED_PCT, min_f1


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

    The bench's teacher PyTorch FP32 row is preferred (the same basis as ``f1_retained_pct``); the
    training stage's test macro-F1 is the fallback when the teacher was not benchmarked.
    """
    if len(rows):
        t = rows[(rows["model"] == "teacher") & (rows["format"] == "pytorch") & (rows["precision"] == "fp32")]
        t = t["macro_f1"].dropna()
        if len(t):
            return float(t.iloc[0]), "teacher PyTorch FP32 (bench)"
    if models is not None and len(models):
        t = models.loc[models["method"] == "teacher", "macro_f1"].dropna()
        if len(t):
            return float(t.iloc[0]), "teacher (training stage, test split)"
    return None, "no teacher result"


GOALS = {
    "most_accurate": "Most accurate",
    "fastest": "Fastest keeping the target",
    "smallest": "Smallest keeping the target",
}


def best_per_goal(rows: pd.DataFrame, reference_f1: float | None, retained_pct: float = RETAINED_PCT,
                  latency: str = "latency_p50_ms") -> dict[str, pd.Series | None]:
    """The winning row for each goal in GOALS; None where no row qualifies.

    Most accurate: highest macro-F1 (ties: lower latency). Fastest / smallest: lowest latency /
    size among rows that keep ``retained_pct`` percent of ``reference_f1`` (edgedistill.targets).
    """
    out: dict[str, pd.Series | None] = {g: None for g in GOALS}
    rows = rows.dropna(subset=["macro_f1"])
    if not len(rows):
        return out
    out["most_accurate"] = rows.sort_values(["macro_f1", latency], ascending=[False, True]).iloc[0]
    if reference_f1 is None:
        return out
    # A hair of slack so a value exactly at the target is not lost to float rounding.
    close = rows[rows["macro_f1"] >= min_f1(reference_f1, retained_pct) - 1e-9]
    fast = close.dropna(subset=[latency])
    if len(fast):
        out["fastest"] = fast.sort_values([latency, "macro_f1"], ascending=[True, False]).iloc[0]
    small = close.dropna(subset=["size_mb"])
    if len(small):
        out["smallest"] = small.sort_values(["size_mb", "macro_f1"], ascending=[True, False]).iloc[0]
    return out


def spans_decades(values, ratio: float = 10.0) -> bool:
    """Whether positive values spread over at least a factor ``ratio``: then a log axis reads better."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    v = v[v > 0]
    return len(v) >= 2 and v.max() / v.min() >= ratio
