"""The checks every artifact passes before its manifest is written: parity and accuracy.

Parity compares logits with the PyTorch FP32 checkpoint on a fixed sample of TEST texts (same
batches, same padding, so only the runtime differs). Accuracy is macro-F1 on the test split
(or a fixed ``eval_samples`` subset of it), next to the PyTorch FP32 macro-F1 on the same texts.
Calibration never uses these texts: it draws from TRAIN (see ``calibration_texts``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgedistill.metrics import classification_metrics, softmax
from export.errors import ExportError


@dataclass
class EvalSet:
    texts: list[str]           # sorted by length, so batches pad little
    labels: np.ndarray
    parity_idx: np.ndarray     # rows of ``texts`` in the parity sample
    test_size: int             # size of the whole test split


def make_eval_set(texts: list[str], labels, parity_samples: int, eval_samples: int | None, seed: int) -> EvalSet:
    """A fixed, seeded choice of test texts; the parity sample is a subset of the macro-F1 set."""
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(texts))
    n_eval = len(texts) if eval_samples is None else min(len(texts), max(eval_samples, parity_samples))
    chosen = order[:n_eval]
    parity_ids = set(order[:min(parity_samples, n_eval)].tolist())
    chosen = sorted(chosen.tolist(), key=lambda i: (len(texts[i]), i))
    return EvalSet([texts[i] for i in chosen], labels[chosen],
                   np.array([row for row, i in enumerate(chosen) if i in parity_ids], dtype=np.int64), len(texts))


def calibration_texts(train_texts: list[str], size: int, seed: int) -> list[str]:
    """``size`` TRAIN texts, seeded, in their original order."""
    n = min(size, len(train_texts))
    idx = np.sort(np.random.default_rng(seed).choice(len(train_texts), n, replace=False))
    return [train_texts[i] for i in idx]


def parity(logits: np.ndarray, reference: np.ndarray, rows: np.ndarray) -> dict:
    a, b = logits[rows].astype(np.float64), reference[rows].astype(np.float64)
    diff = np.abs(a - b)
    return {"n": int(len(rows)), "max_abs_diff": float(diff.max()) if len(rows) else 0.0,
            "mean_abs_diff": float(diff.mean()) if len(rows) else 0.0,
            "agreement_pct": float(100 * np.mean(a.argmax(1) == b.argmax(1))) if len(rows) else 100.0}


def scores(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
    """The project's classification metrics of ``logits`` (macro-F1, per class, ...)."""
    return classification_metrics(labels, softmax(logits.astype(np.float64)), label_names)


def macro_f1(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> float:
    return scores(logits, labels, label_names)["macro_f1"]


def require_fp32_parity(name: str, result: dict, tolerance: float, reference: str):
    """An FP32 artifact must reproduce PyTorch FP32 logits; anything else is a broken export."""
    if result["max_abs_diff"] > tolerance:
        raise ExportError(
            f"{name}: FP32 parity failed, max |logit difference| vs {reference} is {result['max_abs_diff']:.3g} "
            f"on {result['n']} test texts (tolerance {tolerance:g}; agreement {result['agreement_pct']:.1f}%). "
            "The exported graph does not compute what the checkpoint computes: check the opset "
            "(--set opset=18), the runtime's precision settings (OpenVINO must run f32), or raise "
            "export.fp32_tolerance only if the drift is understood.")


def is_flagged(f1: float, f1_source: float, guard_points: float = 1.0) -> bool:
    """The accuracy guard: more than ``guard_points`` macro-F1 points below the FP32 source."""
    return bool(f1 - f1_source < -guard_points / 100)
