"""The numpy metrics (used by the slim bench install) give scikit-learn's numbers."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from edgedistill.metrics import average_precision, classification_metrics, labels_macro_f1, roc_auc


def sklearn_metrics(y, probs, k):
    pred = probs.argmax(1)
    labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    onehot = np.eye(k)[y]
    present = [c for c in labels if 0 < onehot[:, c].sum() < len(y)]
    if k == 2:
        roc, pr = roc_auc_score(y, probs[:, 1]), average_precision_score(y, probs[:, 1])
    else:
        roc = np.mean([roc_auc_score(onehot[:, c], probs[:, c]) for c in present])
        pr = np.mean([average_precision_score(onehot[:, c], probs[:, c]) for c in present])
    return {"accuracy": accuracy_score(y, pred), "macro_f1": f1_score(y, pred, labels=labels, average="macro",
                                                                       zero_division=0),
            "roc_auc": roc, "pr_auc": pr, "p": p, "r": r, "f": f, "s": s,
            "cm": confusion_matrix(y, pred, labels=labels).tolist()}


@pytest.mark.parametrize("k,n,seed,rounding", [(2, 50, 0, 1), (3, 200, 1, 2), (3, 31, 2, None), (5, 120, 3, 1)])
def test_numpy_metrics_equal_sklearn(k, n, seed, rounding):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    if rounding is not None:
        probs = np.round(probs, rounding) + 1e-9 * np.arange(k)   # many tied scores, argmax stays defined
    ours, ref = classification_metrics(y, probs, [f"c{i}" for i in range(k)]), sklearn_metrics(y, probs, k)
    for key in ("accuracy", "macro_f1", "roc_auc", "pr_auc"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    for i in range(k):
        pc = ours["per_class"][f"c{i}"]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx(
            (ref["p"][i], ref["r"][i], ref["f"][i], ref["s"][i]), abs=1e-12)
    assert ours["confusion_matrix"] == ref["cm"]
    assert labels_macro_f1(y, probs.argmax(1), k) == pytest.approx(ref["macro_f1"], abs=1e-12)


def test_binary_scores_with_ties_and_a_class_never_predicted():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    score = np.array([0.1, 0.4, 0.4, 0.8, 0.8, 0.8, 0.2, 0.1])
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)
    probs = np.stack([np.ones(8) * 0.9, np.ones(8) * 0.1], 1)   # never predicts class 1
    m = classification_metrics(y, probs, ["a", "b"])
    assert m["per_class"]["b"]["precision"] == 0.0 and m["macro_f1"] == pytest.approx(
        f1_score(y, probs.argmax(1), average="macro", zero_division=0))
