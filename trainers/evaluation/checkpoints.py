"""Evaluate a checkpoint on a data set split, optionally against a baseline checkpoint.

This is what ``tritonkit evaluate`` runs; the data are normalized with the checkpoint's own input
spec, so the numbers match what the deployed model will see.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import UsageError
from contract.spec import ModelSpec
from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of
from trainers.data import DEFAULT_DATASET, Split, create_dataloader, load_digits_splits, load_imagefolder_splits
from trainers.evaluation.analysis import bootstrap_ci, mcnemar_test, write_plots
from trainers.evaluation.evaluator import EvaluationResult, create_evaluator


def _split_for(spec: ModelSpec, payload: dict[str, Any], data: str | None, split: str) -> Split:
    dataset = payload.get("dataset") or {}
    if not data:
        name = dataset.get("name")
        data = dataset.get("root") if name == "imagefolder" else name
    if not data:
        raise UsageError("the checkpoint does not name its data set; pass --data digits or --data DIR")
    seed = int(dataset.get("seed", 0))
    if data == "digits":
        splits = load_digits_splits(seed=seed)
    else:
        if not Path(data).exists():
            raise UsageError(f"--data {data!r} is neither 'digits' nor an existing folder; "
                             "give one of: digits, a folder with one sub-folder per class")
        if len(spec.input.shape) != 3 or min(spec.input.shape) < 1:
            raise UsageError(f"the model's input shape {list(spec.input.shape)} is not an image (C, H, W); "
                             "an image folder can only evaluate image models")
        c, h, _ = spec.input.shape
        splits = load_imagefolder_splits(data, image_size=int(h), channels=int(c), seed=seed,
                                         mean=spec.mean, std=spec.std)
    if split not in splits:
        raise UsageError(f"split {split!r} is invalid; choose one of: train, val, test")
    chosen = splits[split]
    if len(chosen.labels) == 0:
        raise UsageError(f"the {split} split of {data} is empty; use more images or another --split")
    return chosen


def _loader_for(spec: ModelSpec, split: Split, where: str, batch_size: int, *, raw: bool = False) -> Any:
    shape = tuple(int(d) for d in split.images.shape[1:])
    if shape != tuple(spec.input.shape):
        raise UsageError(f"{where}: the model expects inputs {tuple(spec.input.shape)} but the data "
                         f"images are {shape}; evaluate on the data set the model was trained for")
    if spec.labels and len(spec.labels) != len(split.classes):
        raise UsageError(f"{where}: the model has {len(spec.labels)} classes but the data has "
                         f"{len(split.classes)} ({', '.join(split.classes[:5])}...); use matching data")
    transform = {"scale": 1.0, "mean": [], "std": []} if raw else {
        "scale": spec.scale, "mean": list(spec.mean), "std": list(spec.std)}
    meta = dict(split.meta or {}, **transform)
    normalized = Split(split.images, split.labels, split.classes, meta)
    return create_dataloader(normalized, {"batch_size": batch_size, "shuffle": False})


def _one(path: str | os.PathLike[str], data: str | None, split: str,
         batch_size: int) -> tuple[EvaluationResult, dict[str, Any]]:
    payload = load_checkpoint(path)
    spec = model_spec_of(payload, where=str(path))
    model = model_from_checkpoint(payload, where=str(path))
    chosen = _split_for(spec, payload, data, split)
    loader = _loader_for(spec, chosen, str(path), batch_size)
    labels = list(spec.labels) or list(chosen.classes)
    return create_evaluator(model, {"labels": labels}).evaluate(loader), payload


def evaluate_callable(
    predict: Any,
    spec: ModelSpec,
    data: str,
    split: str = "test",
    where: str = "model",
    batch_size: int = 256,
    n_resamples: int = 1000,
    seed: int = 0,
    raw: bool = False,
) -> dict[str, Any]:
    """Metrics of any ``numpy batch -> logits`` callable (a Triton endpoint, an ONNX session...)
    on a data set split normalized with ``spec``: the same numbers at every stage. ``raw``: the
    callable preprocesses itself (an image ensemble) and gets the split's raw values."""
    payload = {"dataset": {"name": "imagefolder" if data != DEFAULT_DATASET else DEFAULT_DATASET, "root": data,
                           "seed": seed}}
    chosen = _split_for(spec, payload, data, split)
    loader = _loader_for(spec, chosen, where, batch_size, raw=raw)
    labels = list(spec.labels) or list(chosen.classes)
    result = create_evaluator(predict, {"labels": labels}).evaluate(loader)
    return {
        "model": where, "data": data, "split": split, **result.to_dict(),
        "bootstrap": {m: bootstrap_ci(result.y_true, result.y_pred, m, n_resamples=n_resamples)
                      for m in ("accuracy", "macro_f1")},
    }


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | None = None,
    split: str = "test",
    baseline: str | os.PathLike[str] | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Metrics (+ bootstrap CIs, + McNemar vs ``baseline``, + PNG plots) as a JSON-ready dict."""
    result, payload = _one(checkpoint, data, split, batch_size)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "architecture": payload["architecture"],
        "data": data or (payload.get("dataset") or {}).get("name"),
        "split": split,
        **result.to_dict(),
        "bootstrap": {
            m: bootstrap_ci(result.y_true, result.y_pred, m, n_resamples=n_resamples)
            for m in ("accuracy", "macro_f1")
        },
    }
    if baseline is not None:
        base, _ = _one(baseline, data, split, batch_size)
        if not np.array_equal(base.y_true, result.y_true):
            raise UsageError(f"{baseline}: the baseline was evaluated on other items; "
                             "use a baseline trained on the same data set and split")
        report["baseline"] = {
            "checkpoint": str(baseline),
            "top1_accuracy": base.top1_accuracy,
            "macro_f1": base.metrics["macro_f1"],
            "mcnemar": mcnemar_test(result.y_true, result.y_pred, base.y_pred),
        }
    if plots_dir is not None:
        report["plots"] = {k: str(v) for k, v in write_plots(result, plots_dir).items()}
    return report


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable table of an :func:`evaluate_checkpoint` report."""
    ci = report["bootstrap"]
    lines = [
        f"{'checkpoint' if 'checkpoint' in report else 'model':<16}{report.get('checkpoint', report.get('model'))}",
        f"data            {report['data']} ({report['split']}, {report['num_samples']} images)",
        f"top-1 accuracy  {report['top1_accuracy']:.4f}  "
        f"[{ci['accuracy']['low']:.4f}, {ci['accuracy']['high']:.4f}] 95% CI",
        f"top-5 accuracy  {report['top5_accuracy']:.4f}",
        f"macro-F1        {report['macro_f1']:.4f}  "
        f"[{ci['macro_f1']['low']:.4f}, {ci['macro_f1']['high']:.4f}] 95% CI",
        f"ECE             {report['ece']:.4f}",
        f"latency         {report['mean_batch_latency_ms']:.2f} ms per batch "
        f"({report['num_batches']} batches)",
        "",
        f"{'class':<12} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}",
    ]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<12} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} "
                     f"{m['support']:>8d}")
    if "baseline" in report:
        b = report["baseline"]
        mc = b["mcnemar"]
        lines += ["", f"baseline        {b['checkpoint']}: top-1 {b['top1_accuracy']:.4f}, "
                      f"macro-F1 {b['macro_f1']:.4f}",
                  f"McNemar         b={mc['b']} c={mc['c']} p={mc['p_value']:.4g} ({mc['method']})"]
    if "plots" in report:
        lines += ["", "plots           " + ", ".join(report["plots"].values())]
    return "\n".join(lines)
