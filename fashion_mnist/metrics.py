"""Classification metrics through scikit-learn, returned as plain data for metrics.json."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .data import CLASS_NAMES, NUM_CLASSES


def most_confused_pairs(cm: np.ndarray, k: int = 5) -> list[dict]:
    """The ``k`` largest off-diagonal cells: (true class, predicted class, count), largest first."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1][:k]
    pairs = []
    for flat in order:
        t, p = np.unravel_index(flat, cm.shape)
        if off[t, p] == 0:
            break
        pairs.append({
            "true": int(t), "predicted": int(p), "count": int(off[t, p]),
            "true_name": CLASS_NAMES[t], "predicted_name": CLASS_NAMES[p],
            "rate": float(off[t, p] / cm[t].sum()),
        })  # fmt: skip
    return pairs


def classification_summary(y_true, y_pred, k: int = 5) -> dict:
    """Accuracy, confusion matrix, per-class precision/recall/F1 and the most-confused pairs."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.arange(NUM_CLASSES)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "n": int(len(y_true)),
        "confusion_matrix": cm.tolist(),
        "per_class": [
            {
                "class": i,
                "name": CLASS_NAMES[i],
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        ],  # fmt: skip
        "most_confused": most_confused_pairs(cm, k),
    }
