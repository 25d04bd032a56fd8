"""Analysis on top of evaluation results: k-fold CV, bootstrap CIs, McNemar, and PNG plots."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import UsageError
from contract.fileio import atomic_write_bytes
from trainers.evaluation.metrics import expected_calibration_error, reliability_bins, softmax


def kfold_cross_validate(
    fit_and_score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    labels: np.ndarray,
    k: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Stratified k-fold: ``fit_and_score(train_idx, val_idx) -> metrics`` per fold; mean and std.

    The caller owns the data; this helper owns the deterministic, stratified folds.
    """
    from sklearn.model_selection import StratifiedKFold

    if k < 2:
        raise UsageError(f"k-fold needs k >= 2 (got {k})")
    folds = []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train_idx, val_idx in splitter.split(np.zeros(len(labels)), labels):
        folds.append({k_: float(v) for k_, v in fit_and_score(train_idx, val_idx).items()})
    keys = sorted(set().union(*folds))
    return {
        "folds": folds,
        "mean": {key: float(np.mean([f[key] for f in folds if key in f])) for key in keys},
        "std": {key: float(np.std([f[key] for f in folds if key in f])) for key in keys},
    }


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: str = "accuracy",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Percentile bootstrap CI of ``accuracy`` or ``macro_f1`` over resampled test items."""
    from sklearn.metrics import f1_score

    funcs: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "accuracy": lambda t, p: float(np.mean(t == p)),  # as accuracy_score, without its checks
        "macro_f1": lambda t, p: float(f1_score(t, p, average="macro", zero_division=0)),
    }
    if metric not in funcs:
        raise UsageError(f"bootstrap metric {metric!r} is unknown; choose one of: {', '.join(funcs)}")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    stats = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        stats[i] = funcs[metric](y_true[idx], y_pred[idx])
    alpha = (1.0 - confidence) / 2
    return {
        "metric": metric,  # type: ignore[dict-item]
        "point": funcs[metric](y_true, y_pred),
        "low": float(np.quantile(stats, alpha)),
        "high": float(np.quantile(stats, 1 - alpha)),
        "confidence": confidence,
        "n_resamples": n_resamples,
    }


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, float]:
    """Paired McNemar test: do models A and B err on different items more than chance?

    Exact binomial test when the discordant count is below 25, else chi-square with continuity
    correction. ``b``: A right and B wrong; ``c``: A wrong and B right.
    """
    from scipy import stats

    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (len(y_true) == len(pred_a) == len(pred_b)):
        raise UsageError("McNemar needs predictions of both models on the same items")
    a_ok, b_ok = pred_a == y_true, pred_b == y_true
    b = int(np.sum(a_ok & ~b_ok))
    c = int(np.sum(~a_ok & b_ok))
    if b + c == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}  # type: ignore[dict-item]
    if b + c < 25:
        p = float(stats.binomtest(b, b + c, 0.5).pvalue)
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": p, "method": "exact"}  # type: ignore[dict-item]
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    return {"b": b, "c": c, "statistic": float(chi2), "p_value": float(stats.chi2.sf(chi2, 1)),
            "method": "chi2"}  # type: ignore[dict-item]


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _figure(size: tuple[float, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def plot_confusion_matrix(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike[str]) -> Path:
    cm = np.asarray(cm)
    fig = _figure((1.2 + 0.5 * len(labels), 1.0 + 0.5 * len(labels)))
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def plot_reliability_diagram(probs: np.ndarray, y_true: np.ndarray, path: str | os.PathLike[str],
                             n_bins: int = 15) -> Path:
    """Accuracy per confidence bin with each bin's count on its bar; an empty bin is marked, not drawn as 0."""
    rb = reliability_bins(probs, y_true, n_bins)
    fig = _figure((5.0, 4.8))
    ax = fig.subplots()
    width = 1.0 / n_bins
    filled = [i for i, c in enumerate(rb["count"]) if c > 0]
    empty = [i for i, c in enumerate(rb["count"]) if c == 0]
    ax.bar([rb["lower"][i] for i in filled], [rb["accuracy"][i] for i in filled], width=width, align="edge",
           edgecolor="black", label="accuracy (n = samples in the bin)")
    for i in filled:
        ax.annotate(f"n={int(rb['count'][i])}", (rb["lower"][i] + width / 2, rb["accuracy"][i]),
                    ha="center", va="bottom", fontsize=6, rotation=90, xytext=(0, 2), textcoords="offset points")
    if empty:
        ax.bar([rb["lower"][i] for i in empty], [0.03] * len(empty), width=width, align="edge", color="none",
               edgecolor="gray", hatch="//", label="empty bin (no samples)")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {expected_calibration_error(probs, y_true, n_bins):.3f}, "
                 f"{int(sum(rb['count']))} samples)")
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)


def f1_axis_floor(values: Sequence[float]) -> float:
    """Where the per-class F1 axis starts: below the lowest value by half its gap to 1 (at least 0.05), not at 0,
    so a one-point difference between classes is visible."""
    low = min(values) if len(values) else 0.0
    return max(0.0, low - max(0.05, (1.0 - low) * 0.5))


def plot_per_class_f1(per_class: dict[str, dict[str, float]], path: str | os.PathLike[str]) -> Path:
    """F1 per class on an axis zoomed to the data (differences of a point are visible), values written."""
    names = list(per_class)
    values = [per_class[n]["f1"] for n in names]
    fig = _figure((max(4.0, 0.5 * len(names) + 1), 3.5))
    ax = fig.subplots()
    ax.bar(names, values)
    ax.set_ylim(f1_axis_floor(values), 1.0)
    for name, v in zip(names, values):
        ax.annotate(f"{v:.3f}", (name, v), ha="center", va="bottom", fontsize=6, xytext=(0, 1),
                    textcoords="offset points")
    ax.set_ylabel("F1 (axis zoomed to the data)")
    ax.set_title("per-class F1")
    return _save(fig, path)


def write_plots(result: Any, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """The three PNGs of an :class:`~trainers.evaluation.evaluator.EvaluationResult`."""

    out = Path(out_dir)
    return {
        "confusion_matrix": plot_confusion_matrix(result.metrics["confusion_matrix"], result.labels,
                                                  out / "confusion_matrix.png"),
        "reliability": plot_reliability_diagram(softmax(result.logits), result.y_true,
                                                out / "reliability.png"),
        "per_class_f1": plot_per_class_f1(result.metrics["per_class"], out / "per_class_f1.png"),
    }
