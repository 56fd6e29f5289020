"""Which blocks of an INT8 artifact lose its accuracy, and the smallest FP32 repair within a budget.

    ranking = rank_blocks(candidates, score, source_f1, plain)       # most sensitive block first
    repair = greedy_repair(ranking, score, source_f1, plain, max_f1_drop=0.5)

``score(blocks)`` quantizes the artifact again with ``blocks`` kept in FP32 and scores it on a
capped set of VALIDATION texts against the FP32 checkpoint it came from (``score_logits``);
export/pipeline.py supplies it for each INT8 variant, export/blocks.py names the blocks. The
test split never enters: the ranking and the repair are chosen on validation, the artifact's own
checks then report test numbers.

A block's sensitivity is what keeping it alone in FP32 buys back: the validation macro-F1 with
that block in FP32 (then agreement with FP32, then the mean logit distance, so ties on a small
validation set still order). The repair keeps the most sensitive blocks in FP32 one at a time,
in ranking order, until the macro-F1 drop against the FP32 source is within ``max_f1_drop``
points; if keeping every ranked block in FP32 still misses it, the answer is the FP32 artifact.
Cost per INT8 artifact: one quantization and one validation pass per block for the ranking
(4 per layer + 2), at most as many again for the repair.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from export import blocks, checks

Score = dict          # {"macro_f1", "agreement_pct", "mean_abs_dlogit"}
# Macro-F1 is a ratio of counts: compare drops with a little slack, not bit for bit.
EPS_POINTS = 1e-9


def score_logits(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray, label_names: list[str]) -> Score:
    """Validation macro-F1 of ``logits`` and their agreement / mean |logit difference| with FP32."""
    parity = checks.parity(logits, reference, np.arange(len(logits)))
    return {"macro_f1": checks.macro_f1(logits, labels, label_names), "agreement_pct": parity["agreement_pct"],
            "mean_abs_dlogit": parity["mean_abs_diff"]}


def drop_points(score: Score, source_f1: float) -> float:
    """Macro-F1 points below the FP32 source (negative: above it)."""
    return 100 * (source_f1 - score["macro_f1"])


def within_budget(score: Score, source_f1: float, max_f1_drop: float) -> bool:
    return drop_points(score, source_f1) <= max_f1_drop + EPS_POINTS


def _row(score: Score, source_f1: float, plain: Score) -> dict:
    return {**{k: round(v, 6) for k, v in score.items()},
            "f1_delta_points": round(-drop_points(score, source_f1), 4),
            "recovered_points": round(100 * (score["macro_f1"] - plain["macro_f1"]), 4)}


def rank_blocks(candidates: list[str], score: Callable[[list[str]], Score], source_f1: float,
                plain: Score) -> list[dict]:
    """One row per block, most sensitive first: its validation scores with it alone in FP32."""
    rows = [{"block": b, "label": blocks.describe(b), **_row(score([b]), source_f1, plain)} for b in candidates]
    rows.sort(key=lambda r: (-r["macro_f1"], -r["agreement_pct"], r["mean_abs_dlogit"]))
    return [{"rank": i, **r} for i, r in enumerate(rows, 1)]


def greedy_repair(ranking: list[dict], score: Callable[[list[str]], Score], source_f1: float, plain: Score,
                  max_f1_drop: float) -> dict:
    """The fewest top-ranked blocks kept in FP32 that bring the validation drop within budget.

    ``outcome``: ``within_budget`` (the plain INT8 artifact already is: nothing to repair),
    ``repaired`` (``excluded`` lists the blocks kept in FP32) or ``fp32`` (no exclusion of the
    ranked blocks meets the budget: the FP32 artifact is the answer). ``steps`` records every
    exclusion tried with its validation scores."""
    out = {"max_f1_drop": max_f1_drop, "source_macro_f1": round(source_f1, 6),
           "plain": _row(plain, source_f1, plain), "steps": [], "excluded": []}
    if within_budget(plain, source_f1, max_f1_drop):
        return {**out, "outcome": "within_budget"}
    excluded: list[str] = []
    for row in ranking:
        excluded.append(row["block"])
        # One block alone was scored by the ranking; the same quantization gives the same graph.
        s = {k: row[k] for k in ("macro_f1", "agreement_pct", "mean_abs_dlogit")} if len(excluded) == 1 \
            else score(list(excluded))
        out["steps"].append({"excluded": list(excluded), **_row(s, source_f1, plain)})
        if within_budget(s, source_f1, max_f1_drop):
            return {**out, "outcome": "repaired", "excluded": list(excluded), "validation": out["steps"][-1]}
    return {**out, "outcome": "fp32"}


def _versus_fp32(drop: float) -> str:
    drop = round(drop, 2) + 0.0            # no "-0.00"
    return f"{abs(drop):.2f} pts {'below' if drop >= 0 else 'above'} FP32"


def outcome_text(artifact: str, repair: dict, fp32_answer: str) -> str:
    """One line for the console and export.md."""
    budget = f"{repair['max_f1_drop']:g}"
    plain = _versus_fp32(-repair["plain"]["f1_delta_points"])
    if repair["outcome"] == "within_budget":
        return f"{artifact}: within the {budget}-pt budget ({plain} on validation)"
    if repair["outcome"] == "repaired":
        return (f"{artifact}: {plain} on validation, over the {budget}-pt budget; repaired with "
                f"{', '.join(repair['excluded'])} in FP32 ({_versus_fp32(-repair['validation']['f1_delta_points'])})")
    return (f"{artifact}: {plain} on validation, over the {budget}-pt budget, and no exclusion of its "
            f"{len(repair['steps'])} ranked blocks meets it: {fp32_answer} (FP32) is the answer")
