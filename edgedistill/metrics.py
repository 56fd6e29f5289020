"""Classification metrics shared by training, export checks and the bench (scikit-learn)."""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def classification_metrics(y_true, probs, label_names: list[str]) -> dict:
    """Accuracy, macro-F1, per-class P/R/F1/support, ROC-AUC and PR-AUC (one-vs-rest), confusion.

    ``probs`` are class probabilities (n, k). AUCs are None when a class is absent from y_true.
    """
    # Imported here: the runtimes use ``softmax`` and must stay light to import.
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(label_names)
    y_pred = probs.argmax(axis=1)
    labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    onehot = np.eye(k)[y_true]
    present = [c for c in labels if 0 < onehot[:, c].sum() < len(y_true)]
    if k == 2:
        roc = roc_auc_score(y_true, probs[:, 1]) if len(present) == 2 else None
        pr = average_precision_score(y_true, probs[:, 1]) if len(present) == 2 else None
    else:
        roc = float(np.mean([roc_auc_score(onehot[:, c], probs[:, c]) for c in present])) if present else None
        pr = float(np.mean([average_precision_score(onehot[:, c], probs[:, c]) for c in present])) if present else None
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "roc_auc": None if roc is None else float(roc),
        "pr_auc": None if pr is None else float(pr),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
