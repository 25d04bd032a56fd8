"""The Evaluator: the same metrics for every stage (torch, ONNX Runtime, TensorRT, Triton).

``create_evaluator(model, config).evaluate(loader)`` runs ``predict(batch) -> logits`` over a
loader of ``(inputs, labels)`` batches and returns :class:`EvaluationResult`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.errors import TritonkitError, UsageError
from trainers.evaluation.adapters import PredictFn, as_predict_fn
from trainers.evaluation.metrics import classification_metrics


@dataclass
class EvaluationResult:
    """Metrics plus the raw predictions (kept for bootstrap, McNemar and plots)."""

    metrics: dict[str, Any]
    y_true: np.ndarray = field(repr=False)
    logits: np.ndarray = field(repr=False)
    labels: list[str]
    mean_batch_latency_ms: float
    num_batches: int

    @property
    def y_pred(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def top1_accuracy(self) -> float:
        return float(self.metrics["top1_accuracy"])

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics, "labels": self.labels,
                "mean_batch_latency_ms": self.mean_batch_latency_ms, "num_batches": self.num_batches}


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class Evaluator:
    """Evaluates any ``predict(np batch) -> np logits`` callable over a loader."""

    def __init__(self, predict: Any, labels: list[str] | None = None, n_bins: int = 15,
                 warmup_batches: int = 1) -> None:
        self.predict: PredictFn = as_predict_fn(predict)
        self.labels = list(labels) if labels else None
        self.n_bins = n_bins
        self.warmup_batches = warmup_batches

    def evaluate(self, loader: Any) -> EvaluationResult:
        """Run every batch once; latency is the mean wall time per ``predict`` call."""
        ys, outs, times = [], [], []
        for batch in loader:
            x, y = batch[0], batch[1]
            xb = _to_numpy(x).astype(np.float32, copy=False)
            t0 = time.perf_counter()
            try:
                logits = _to_numpy(self.predict(xb))
            except TritonkitError:
                raise
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                # A model whose stored spec does not match it (a damaged or hostile checkpoint).
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise UsageError(f"the model failed on a batch of shape {list(xb.shape)} ({first}); its "
                                 "input spec does not match the model: re-export or re-save it") from None
            elapsed = time.perf_counter() - t0
            times.append(elapsed)
            ys.append(_to_numpy(y).astype(np.int64))
            outs.append(logits.astype(np.float32))
        if not outs:
            raise UsageError("evaluation data is empty; give a loader with at least one batch")
        y_true, logits = np.concatenate(ys), np.concatenate(outs)
        if logits.ndim != 2 or not np.isfinite(logits).all():
            raise UsageError(f"the model's outputs are not finite class scores (shape {list(logits.shape)}); "
                             "check the model's normalization (mean/std) and weights")
        labels = self.labels or [str(i) for i in range(logits.shape[1])]
        timed = times[self.warmup_batches:] or times  # the first call may pay one-off setup costs
        latency = float(np.mean(timed)) * 1e3
        return EvaluationResult(
            metrics=classification_metrics(y_true, logits, labels, self.n_bins),
            y_true=y_true, logits=logits, labels=labels,
            mean_batch_latency_ms=latency, num_batches=len(outs),
        )


def create_evaluator(model: Any, config: dict[str, Any] | None = None) -> Evaluator:
    """An :class:`Evaluator` for a torch module, ONNX session/path, or any callable.

    Config keys: ``labels`` (class names), ``n_bins`` (ECE bins, 15), ``warmup_batches`` (1: the
    first batch is not timed).
    """
    config = dict(config or {})
    return Evaluator(model, labels=config.get("labels"), n_bins=int(config.get("n_bins", 15)),
                     warmup_batches=int(config.get("warmup_batches", 1)))
