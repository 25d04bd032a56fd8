"""Ready-made training runs: the default digits model that ``make repo`` trains."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from toolkit.spec import ModelSpec, TensorSpec
from trainers.checkpoint import save_checkpoint
from trainers.data import DIGITS_MEAN, DIGITS_SCALE, DIGITS_STD, create_dataloader, load_digits_splits
from trainers.models import create_model

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def digits_model_spec(labels: list[str]) -> ModelSpec:
    """Spec of the digits models: one 1x8x8 fp32 image in, one logit per class out."""
    return ModelSpec(
        inputs=(TensorSpec(INPUT_NAME, (1, 8, 8), "float32"),),
        outputs=(TensorSpec(OUTPUT_NAME, (len(labels),), "float32"),),
        layout="NCHW",
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        scale=DIGITS_SCALE,
        value_range=(0.0, 16.0),
        labels=tuple(labels),
    )


@torch.no_grad()
def accuracy(model: nn.Module, loader: Any) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


def train_digits_default(out: str | Path, epochs: int = 15, seed: int = 0, quiet: bool = False) -> Path:
    """Train the default SmallCNN on digits and save ``out`` (a checkpoint file)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    splits = load_digits_splits(seed=seed)
    labels = splits["train"].classes
    arch = {"name": "smallcnn", "kwargs": {"num_classes": len(labels), "in_channels": 1, "width": 32}}
    model = create_model(arch["name"], **arch["kwargs"])
    train = create_dataloader(splits["train"], {"batch_size": 32, "seed": seed, "shuffle": True})
    val = create_dataloader(splits["val"], {"batch_size": 256, "shuffle": False})
    test = create_dataloader(splits["test"], {"batch_size": 256, "shuffle": False})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * len(train))
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        model.train()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        if not quiet:
            print(f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f} val_acc {accuracy(model, val):.4f}")
    metrics = {"val_accuracy": accuracy(model, val), "test_accuracy": accuracy(model, test),
               "train_seconds": time.perf_counter() - t0}
    return save_checkpoint(
        {
            "architecture": arch,
            "model_spec": digits_model_spec(labels).to_dict(),
            "labels": labels,
            "model_state": model.state_dict(),
            "metrics": metrics,
            "epoch": epochs,
            "step": step,
            "dataset": splits["train"].meta,
            "optimizer_state": opt.state_dict(),
            "scheduler_state": sched.state_dict(),
            "callbacks_state": {},
            "rng_state": None,
            "config": {"epochs": epochs, "seed": seed, "batch_size": 32, "lr": 3e-3},
        },
        out,
    )
