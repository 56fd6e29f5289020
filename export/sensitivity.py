"""Which blocks of an INT8 artifact lose its accuracy, and the smallest FP32 repair within a budget,
each decided on evidence larger than its noise.

    plain = score_logits(val_logits, val_ref, labels, names, pool_logits, pool_ref)
    ranking = rank_blocks(candidates, score, source_f1, plain)       # most sensitive block first
    repair = greedy_repair(ranking, score, source_f1, plain, max_f1_drop=0.5)

``score(blocks)`` quantizes the artifact again with ``blocks`` kept in FP32 and scores it against the
FP32 checkpoint it came from on two sets of texts that are not the test split (export/repair.py
supplies it):

- the capped VALIDATION texts, with their labels: the macro-F1 drop against FP32 and its paired
  bootstrap 95% interval (both models scored on the same resampled texts, so only the texts whose
  label INT8 flips move the difference);
- the run's POOL of unlabelled in-domain texts (the ones the teacher labels for the students; the
  training texts when the run has no pool), thousands of them and no labels needed: the share of
  texts whose label INT8 keeps (agreement with FP32, with its interval) and the mean KL divergence
  of FP32's class probabilities from INT8's.

On a few hundred validation texts one flipped label moves macro-F1 by tenths of a point, as much as
the budget, so no decision rests on a point estimate alone:

- A block counts as sensitive only where keeping it alone in FP32 lowers the pool KL by more than
  its interval: the lower bound of the paired bootstrap interval of the per-text KL reduction is
  above zero. Counted blocks rank first, by that reduction; the rest follow, so the table still
  shows them, but the repair never spends a block on them.
- An artifact is over budget only where the evidence says so (``verdict``): its validation interval
  shows a drop (its lower bound above zero) and the drop's estimate is above ``max_f1_drop``. It is
  within budget where the interval's upper bound is within it, or where INT8 changes so few labels on
  the pool that its accuracy cannot have moved by the budget (the upper bound of the flip rate, in
  percent, at most ``max_f1_drop``). Anything between is inside the noise: recorded, and no
  ``-repaired`` sibling is built for it. (The pool has no labels, so it bounds how far INT8 can have
  moved, not which way: it can clear an artifact, never condemn one.)

The repair keeps the counted blocks in FP32 one at a time, in ranking order, until the artifact is
no longer over budget; if every counted block in FP32 still is, the answer is the FP32 artifact.
Cost per INT8 artifact: one quantization and one pass over validation + pool per block for the
ranking (4 per layer + 2), at most as many again for the repair. Scores without the evidence (a
caller with no pool or no labels) fall back to the point estimates.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgedistill.paired import CONFIDENCE, bootstrap_interval
from export import blocks, checks

Score = dict          # the summary below, plus the per-text arrays the intervals are drawn from ("_" keys)
# Macro-F1 is a ratio of counts: compare drops with a little slack, not bit for bit.
EPS_POINTS = 1e-9
RESAMPLES = 1000      # bootstrap resamples of the texts: 1,000 put a 95% interval's ends within a few % of itself
SEED = 0
VERDICTS = {"over": "over budget", "within": "within budget", "noise": "inside the noise"}
# The version of the rule ``verdict`` applies: a kept INT8 artifact judged by another is judged again.
VERDICT_RULE = 2


def macro_f1_resampled(labels: np.ndarray, preds: np.ndarray, idx: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of ``preds`` on each row of resampled text indices ``idx`` (R x n), vectorised; a class
    absent from both labels and predictions of a resample scores 0, as scikit-learn's zero_division=0."""
    y, p = labels[idx], preds[idx]
    f1 = np.zeros(idx.shape[0])
    for c in range(n_classes):
        tp = np.sum((y == c) & (p == c), axis=1)
        fp = np.sum((y != c) & (p == c), axis=1)
        fn = np.sum((y == c) & (p != c), axis=1)
        den = 2 * tp + fp + fn
        f1 += np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
    return f1 / n_classes


def drop_interval(labels: np.ndarray, source_pred: np.ndarray, pred: np.ndarray, n_classes: int,
                  resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float, float]:
    """FP32 macro-F1 minus INT8 macro-F1 in points, with its paired bootstrap 95% interval."""
    return mean_drop_interval(labels, [(source_pred, pred)], n_classes, resamples, seed)


def mean_drop_interval(labels: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]], n_classes: int,
                       resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float, float]:
    """The mean over ``pairs`` (first, second predictions on the same texts) of first macro-F1 minus second, in
    points, with its paired bootstrap 95% interval: every pair is scored on the same resample of the texts, so
    the interval is that of the mean difference (e.g. a recipe against another, one pair per seed), narrower
    than any one pair's when the pairs agree."""
    n = len(labels)
    full = np.arange(n)[None, :]

    def mean_diff(idx):
        return 100 * np.mean([macro_f1_resampled(labels, a, idx, n_classes)
                              - macro_f1_resampled(labels, b, idx, n_classes) for a, b in pairs], axis=0)

    point = float(mean_diff(full)[0])
    if not any((a != b).any() for a, b in pairs):
        return point, point, point           # the same labels on every text: no resample differs
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    diff = mean_diff(idx)
    tail = 100 * (1 - CONFIDENCE) / 2
    return point, float(np.percentile(diff, tail)), float(np.percentile(diff, 100 - tail))


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean of per-text values with its bootstrap 95% interval."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size or np.all(values == values[0]):
        v = float(values[0]) if values.size else 0.0
        return v, v, v
    low, high = bootstrap_interval(values, stat=lambda x: x.mean(axis=-1), resamples=RESAMPLES, seed=SEED)
    return float(values.mean()), low, high


def kl_per_text(logits: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """KL(FP32 || INT8) of the class probabilities, one value per text (nats)."""
    def log_softmax(z):
        z = z.astype(np.float64) - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    ref, got = log_softmax(reference), log_softmax(logits)
    return np.maximum((np.exp(ref) * (ref - got)).sum(axis=1), 0.0)


def score_logits(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray, label_names: list[str],
                 pool_logits: np.ndarray | None = None, pool_reference: np.ndarray | None = None) -> Score:
    """Validation macro-F1 of ``logits`` with its drop against FP32 (paired interval), agreement and mean
    |logit difference| with FP32; on the pool (when given) agreement with FP32 and mean KL, with intervals."""
    labels = np.asarray(labels)
    parity = checks.parity(logits, reference, np.arange(len(logits)))
    pred, source_pred = logits.argmax(1), reference.argmax(1)
    drop, low, high = drop_interval(labels, source_pred, pred, len(label_names))
    out = {"macro_f1": checks.macro_f1(logits, labels, label_names), "agreement_pct": parity["agreement_pct"],
           "mean_abs_dlogit": parity["mean_abs_diff"], "drop_points": drop, "drop_low": low, "drop_high": high,
           "n": int(len(labels))}
    if pool_logits is not None and len(pool_logits):
        flips = (pool_logits.argmax(1) != pool_reference.argmax(1)).astype(np.float64)
        kl = kl_per_text(pool_logits, pool_reference)
        flip, flip_low, flip_high = mean_interval(flips)
        out.update({"pool_n": int(len(flips)), "pool_agreement_pct": 100 * (1 - flip),
                    "pool_agreement_low": 100 * (1 - flip_high), "pool_agreement_high": 100 * (1 - flip_low),
                    "pool_kl": float(kl.mean()), "_pool_kl": kl})
    return out


def drop_points(score: Score, source_f1: float) -> float:
    """Macro-F1 points below the FP32 source (negative: above it)."""
    return 100 * (source_f1 - score["macro_f1"])


def verdict(score: Score, source_f1: float, max_f1_drop: float) -> str:
    """``over``, ``within`` or ``noise`` (see the module doc); point estimates where no interval was drawn."""
    point, budget = drop_points(score, source_f1), max_f1_drop + EPS_POINTS
    if "drop_low" not in score:
        return "over" if point > budget else "within"
    if point > budget and score["drop_low"] > EPS_POINTS:
        return "over"            # a drop its interval shows, estimated above the budget
    flips_high = 100 - score["pool_agreement_low"] if "pool_agreement_low" in score else None
    if score["drop_high"] <= budget or (flips_high is not None and flips_high <= budget):
        return "within"          # the interval, or the few labels INT8 changes on the pool, keep it within
    return "noise"


def within_budget(score: Score, source_f1: float, max_f1_drop: float) -> bool:
    """Not shown over budget: within it, or inside the noise."""
    return verdict(score, source_f1, max_f1_drop) != "over"


def kl_reduction(score: Score, plain: Score) -> tuple[float, float, float] | None:
    """How much keeping the score's blocks in FP32 lowers the pool KL against the plain INT8 artifact,
    per text, with its bootstrap interval (None without a pool)."""
    if "_pool_kl" not in score or "_pool_kl" not in plain:
        return None
    return mean_interval(plain["_pool_kl"] - score["_pool_kl"])


def public(score: Score) -> dict:
    """The score as written into manifests and export.json: rounded, without the per-text arrays."""
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in score.items() if not k.startswith("_")}


def score_row(score: Score, source_f1: float, plain: Score) -> dict:
    out = {**public(score), "f1_delta_points": round(-drop_points(score, source_f1), 4),
           "recovered_points": round(100 * (score["macro_f1"] - plain["macro_f1"]), 4)}
    reduction = kl_reduction(score, plain)
    if reduction is not None:
        out.update({"kl_reduction": round(reduction[0], 6), "kl_reduction_low": round(reduction[1], 6),
                    "kl_reduction_high": round(reduction[2], 6), "counts": bool(reduction[1] > 0)})
    return out


def rank_blocks(candidates: list[str], score: Callable[[list[str]], Score], source_f1: float,
                plain: Score) -> list[dict]:
    """One row per block, most sensitive first: its scores with it alone in FP32. With a pool: the blocks
    whose KL reduction clears its interval (``counts``) first, by that reduction; without one, by
    validation macro-F1, then agreement with FP32, then the mean logit distance."""
    rows = []
    for b in candidates:
        s = score([b])
        rows.append({"block": b, "label": blocks.describe(b), **score_row(s, source_f1, plain), "_score": s})
    rows.sort(key=lambda r: (not r.get("counts", True), -r.get("kl_reduction", 0.0), -r["macro_f1"],
                             -r["agreement_pct"], r["mean_abs_dlogit"]))
    return [{"rank": i, **r} for i, r in enumerate(rows, 1)]


def greedy_repair(ranking: list[dict], score: Callable[[list[str]], Score], source_f1: float, plain: Score,
                  max_f1_drop: float) -> dict:
    """The fewest top-ranked counted blocks kept in FP32 that bring the artifact out of "over budget".

    ``outcome``: ``within_budget`` (the plain INT8 artifact is not shown over budget: nothing to repair;
    ``verdict`` says whether within it or inside the noise), ``repaired`` (``excluded`` lists the blocks kept
    in FP32) or ``fp32`` (no exclusion of the counted blocks gets it there: the FP32 artifact is the answer).
    ``steps`` records every exclusion tried with its scores."""
    out = {"max_f1_drop": max_f1_drop, "source_macro_f1": round(source_f1, 6),
           "plain": score_row(plain, source_f1, plain), "verdict": verdict(plain, source_f1, max_f1_drop),
           "verdict_rule": VERDICT_RULE,
           "steps": [], "excluded": []}
    if out["verdict"] != "over":
        return {**out, "outcome": "within_budget"}
    excluded: list[str] = []
    for row in [r for r in ranking if r.get("counts", True)]:
        excluded.append(row["block"])
        # One block alone was scored by the ranking; the same quantization gives the same graph.
        s = row["_score"] if len(excluded) == 1 and "_score" in row else score(list(excluded))
        out["steps"].append({"excluded": list(excluded), **score_row(s, source_f1, plain)})
        if verdict(s, source_f1, max_f1_drop) != "over":
            return {**out, "outcome": "repaired", "excluded": list(excluded), "validation": out["steps"][-1]}
    return {**out, "outcome": "fp32"}


def strip(ranking: list[dict]) -> list[dict]:
    """The ranking as written into manifests: without each row's score arrays."""
    return [{k: v for k, v in r.items() if k != "_score"} for r in ranking]


def _versus_fp32(drop: float) -> str:
    drop = round(drop, 2) + 0.0            # no "-0.00"
    return f"{abs(drop):.2f} pts {'below' if drop >= 0 else 'above'} FP32"


def evidence_text(row: dict) -> str:
    """'0.80 pts below FP32 on validation [-0.40, +1.90]; pool agreement 99.1% [98.7, 99.5] of 2000 texts'.
    The interval reads as the words do: of the drop where INT8 is below FP32, of the gain where above."""
    drop = -row["f1_delta_points"]
    text = _versus_fp32(drop) + " on validation"
    if "drop_low" in row:
        below = round(drop, 2) + 0.0 >= 0
        low, high = (row["drop_low"], row["drop_high"]) if below else (-row["drop_high"], -row["drop_low"])
        text += f" [{low:+.2f}, {high:+.2f}]"
    if "pool_agreement_pct" in row:
        text += (f"; pool agreement {row['pool_agreement_pct']:.1f}% [{row['pool_agreement_low']:.1f}, "
                 f"{row['pool_agreement_high']:.1f}] of {row['pool_n']} texts")
    return text


def outcome_text(artifact: str, repair: dict, fp32_answer: str) -> str:
    """One line for the console and export.md."""
    budget = f"{repair['max_f1_drop']:g}"
    plain = evidence_text(repair["plain"])
    if repair["outcome"] == "within_budget":
        if repair.get("verdict") == "noise":
            return f"{artifact}: inside the noise of the {budget}-pt budget ({plain}); not repaired"
        return f"{artifact}: within the {budget}-pt budget ({plain})"
    if repair["outcome"] == "repaired":
        return (f"{artifact}: {plain}, over the {budget}-pt budget; repaired with "
                f"{', '.join(repair['excluded'])} in FP32 ({evidence_text(repair['validation'])})")
    counted = len(repair["steps"])
    return (f"{artifact}: {plain}, over the {budget}-pt budget, and no exclusion of its "
            f"{counted} counted block{'s' * (counted != 1)} meets it: {fp32_answer} (FP32) is the answer")
