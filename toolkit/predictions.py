"""Classify held-out digits through a served model, the way training saw them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit.spec import ModelSpec


@dataclass
class Prediction:
    index: int
    label: str
    score: float
    truth: str | None

    @property
    def correct(self) -> bool | None:
        return None if self.truth is None else self.label == self.truth


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def heldout_digits(spec: ModelSpec, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test-split digits, preprocessed with the model's own normalization."""
    from trainers.data import load_digits_splits, normalize

    test = load_digits_splits(seed=seed)["test"]
    n = min(n, len(test.labels))
    x = normalize(test.images[:n], spec.scale, spec.mean, spec.std)
    return x, test.labels[:n]


def classify(
    predict: Any, batch: np.ndarray, labels: tuple[str, ...] | list[str], truth: np.ndarray | None = None,
    batch_size: int = 32,
) -> list[Prediction]:
    """Run ``predict`` (numpy batch -> logits) in chunks; top-1 label and softmax score per row."""
    out: list[Prediction] = []
    for start in range(0, len(batch), batch_size):
        logits = np.asarray(predict(batch[start : start + batch_size]))
        probs = softmax(logits.astype(np.float64))
        for i, row in enumerate(probs):
            k = int(row.argmax())
            idx = start + i
            out.append(Prediction(
                idx, labels[k] if k < len(labels) else str(k), float(row[k]),
                None if truth is None else (labels[int(truth[idx])] if labels else str(int(truth[idx]))),
            ))
    return out


def accuracy(preds: list[Prediction]) -> float:
    judged = [p.correct for p in preds if p.correct is not None]
    return sum(judged) / len(judged) if judged else float("nan")
