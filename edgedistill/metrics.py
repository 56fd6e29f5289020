"""Classification metrics shared by training, export checks and the bench.

numpy only: the bench runs in a slim install (onnxruntime / openvino, no scikit-learn) on the
target machine, and computes these there. tests/test_metrics.py holds every function to
scikit-learn's result (accuracy_score, precision_recall_fscore_support, f1_score,
roc_auc_score, average_precision_score, confusion_matrix) on random data with ties.
"""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: row = true class, column = predicted class."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def class_f1(cm: np.ndarray) -> np.ndarray:
    """Per-class F1 of a confusion matrix (0 for a class neither true nor predicted)."""
    return _ratio(2 * np.diag(cm), cm.sum(axis=1) + cm.sum(axis=0))


def labels_macro_f1(y_true, y_pred, k: int) -> float:
    """Macro-F1 of predicted labels over all ``k`` classes: what ``classification_metrics`` reports, for
    callers that hold labels rather than probabilities."""
    return float(np.mean(class_f1(confusion(np.asarray(y_true).astype(np.int64),
                                            np.asarray(y_pred).astype(np.int64), k))))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC-AUC as the Mann-Whitney statistic (tied scores count one half)."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score, dtype=np.float64)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # Average rank within each run of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):
        ranks[a:b] = (a + b + 1) / 2.0
    pos = y[order]
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Binary average precision: sum over score thresholds of (recall step) x precision."""
    y = np.asarray(y).astype(np.float64)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    s, y = np.asarray(score, dtype=np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]        # the last index of each distinct score
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_metrics(y_true, probs, label_names: list[str]) -> dict:
    """Accuracy, macro-F1, per-class P/R/F1/support, ROC-AUC and PR-AUC (one-vs-rest), confusion.

    ``probs`` are class probabilities (n, k). AUCs are None when a class is absent from y_true.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(label_names)
    y_pred = probs.argmax(axis=1)
    cm = confusion(y_true, y_pred, k)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    p, r = _ratio(tp, predicted), _ratio(tp, support)
    f = class_f1(cm)
    onehot = np.eye(k)[y_true]
    present = [c for c in range(k) if 0 < onehot[:, c].sum() < len(y_true)]
    if k == 2:
        roc = roc_auc(y_true, probs[:, 1]) if len(present) == 2 else None
        pr = average_precision(y_true, probs[:, 1]) if len(present) == 2 else None
    else:
        roc = float(np.mean([roc_auc(onehot[:, c], probs[:, c]) for c in present])) if present else None
        pr = float(np.mean([average_precision(onehot[:, c], probs[:, c]) for c in present])) if present else None
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f)),
        "roc_auc": None if roc is None else float(roc),
        "pr_auc": None if pr is None else float(pr),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": cm.tolist(),
    }
