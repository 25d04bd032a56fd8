"""Classification metrics from labels and logits; scikit-learn does the arithmetic."""

from __future__ import annotations

from typing import Any

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE: confidence-vs-accuracy gap over equal-width confidence bins, weighted by bin size."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy and count (for the reliability diagram)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": [], "lower": []}
    for b in range(n_bins):
        mask = bins == b
        out["lower"].append(b / n_bins)
        out["count"].append(float(mask.sum()))
        out["confidence"].append(float(conf[mask].mean()) if mask.any() else 0.0)
        out["accuracy"].append(float(correct[mask].mean()) if mask.any() else 0.0)
    return out


def classification_metrics(
    y_true: np.ndarray, logits: np.ndarray, labels: list[str] | None = None, n_bins: int = 15
) -> dict[str, Any]:
    """Top-1/top-5 accuracy, per-class precision/recall/F1, macro-F1, confusion matrix, ECE."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    y_true = np.asarray(y_true, dtype=np.int64)
    n_classes = logits.shape[1]
    classes = list(range(n_classes))
    labels = list(labels) if labels else [str(c) for c in classes]
    probs = softmax(logits)
    pred = probs.argmax(axis=1)
    k = min(5, n_classes)
    # With 5 classes or fewer every label is in the top 5: the score is 1 by definition.
    top5 = float(top_k_accuracy_score(y_true, probs, k=k, labels=classes)) if k < n_classes else 1.0
    p, r, f, support = precision_recall_fscore_support(
        y_true, pred, labels=classes, zero_division=0
    )
    return {
        "num_samples": int(len(y_true)),
        "top1_accuracy": float(accuracy_score(y_true, pred)),
        "top5_accuracy": top5,
        "macro_f1": float(f1_score(y_true, pred, labels=classes, average="macro", zero_division=0)),
        "per_class": {
            labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                        "support": int(support[i])}
            for i in classes
        },
        "confusion_matrix": confusion_matrix(y_true, pred, labels=classes).tolist(),
        "ece": expected_calibration_error(probs, y_true, n_bins),
    }
