"""Helpers for the training tests: tiny models, trainer settings and a resumable run, so the suite stays fast."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainers.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint
from trainers.data import Split
from trainers.loggers import default_loggers
from trainers.models import create_model
from trainers.recipes import digits_model_spec
from trainers.trainer import Trainer


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


class DropoutTrainer(Trainer):
    """Input dropout draws from the global RNG every step, so RNG state must survive a resume."""

    def train_step(self, batch):
        x, y = self.to_device(batch)
        return F.cross_entropy(self.model(F.dropout(x, 0.2, training=True)), y)


class SendSignal(Callback):
    """Sends ``sig`` to this process after optimizer step ``at_step``: a real interrupt, mid-run."""

    def __init__(self, at_step: int, sig: int = signal.SIGINT):
        self.at_step, self.sig = at_step, sig

    def on_optimizer_step(self, trainer, step):
        if step == self.at_step:
            os.kill(os.getpid(), self.sig)


def make(run_dir, classes, seed_model: int, extra=()):
    """A resumable run with every kind of state: dropout RNG, early stopping, best-2, warm-up cosine."""
    model = tiny_model(seed_model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    callbacks = [EarlyStopping(patience=50), ModelCheckpoint(save_top_k=2),
                 LearningRateScheduler.warmup_cosine(warmup_steps=4), *extra]
    return DropoutTrainer(model, opt, callbacks=callbacks, seed=7, accumulate_grad_batches=2,
                          **trainer_kwargs(run_dir, classes))
