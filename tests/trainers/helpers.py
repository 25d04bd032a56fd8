"""Helpers for the training tests: tiny models and trainer settings, so the suite stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers.data import Split
from trainers.loggers import default_loggers
from trainers.models import create_model
from trainers.recipes import digits_model_spec


def subset(split: Split, n: int) -> Split:
    return Split(split.images[:n], split.labels[:n], split.classes, dict(split.meta))


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("smallcnn", num_classes=10, in_channels=1, width=4)


def trainer_kwargs(run_dir: Path, classes: list[str], **extra: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "run_dir": run_dir,
        "model_spec": digits_model_spec(list(classes)).to_dict(),
        "labels": list(classes),
    }
    kw.update(extra)
    kw["loggers"] = default_loggers(progress=kw.pop("progress", False), curves=kw.pop("curves", False))
    return kw


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
