"""A static student's decision rule fitted to the teacher's (methods.static_calibrate: teacher).

A mean of token vectors is less sure of a rare class than the teacher it learns from: its probabilities may
be right on average, yet its argmax names that class far less often than the teacher's does, and macro-F1
pays for every missed text of a small class. One offset per class, added to the logits, moves the decision
boundaries without touching what the student learned. The offsets are chosen to agree best with the teacher
(macro-F1 against its labels) on held-out texts, the ones that chose the epoch; they are added to the
head's output bias, so the saved student, and every export of it, carries them.
"""
from __future__ import annotations

import numpy as np

from edgedistill.metrics import labels_macro_f1

# The offsets tried for each class, in the logits' units. A static head's logits span a few units; offsets
# beyond +-2 would overrule most of what it learned, and a step of 0.05 moves only a handful of texts.
OFFSET_GRID = np.round(np.arange(-2.0, 2.0 + 1e-9, 0.05), 2)
# Rounds of coordinate ascent: each class's offset chosen with the others held, until a round changes none.
MAX_ROUNDS = 5


def agreement(logits: np.ndarray, labels: np.ndarray, offsets: np.ndarray) -> float:
    """Macro-F1 of the offset logits' argmax against ``labels`` (over every class, present or not)."""
    return labels_macro_f1(labels, (logits + offsets).argmax(axis=1), logits.shape[1])


def fit_offsets(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-class offsets (the first class's fixed at 0: a shared shift changes no argmax) that maximise
    ``agreement`` on (``logits``, ``labels``); with the agreement before and after. An offset moves only for a
    strict gain, and among equal gains the one nearest 0 wins: no evidence, no change."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise ValueError(f"fit_offsets: logits {logits.shape} and {len(labels)} labels must be one row per text")
    offsets = np.zeros(logits.shape[1])
    before = best = agreement(logits, labels, offsets)
    # Nearest to 0 first: ties keep the smaller move.
    grid = OFFSET_GRID[np.argsort(np.abs(OFFSET_GRID), kind="stable")]
    for _ in range(MAX_ROUNDS):
        moved = False
        for c in range(1, logits.shape[1]):
            for value in grid:
                trial = offsets.copy()
                trial[c] = value
                score = agreement(logits, labels, trial)
                if score > best + 1e-12:
                    best, offsets, moved = score, trial, True
        if not moved:
            break
    return offsets, before, best
