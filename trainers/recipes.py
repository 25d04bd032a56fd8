"""Ready-made training runs: the default digits model that ``make repo`` trains, and the
generic run behind ``tritonkit train``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contract.errors import UsageError
from trainers.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint
from trainers.checkpoint import load_checkpoint, save_checkpoint
from trainers.data import (  # noqa: F401 - digits_model_spec, spec_for_split: importers use this home
    DATASETS,
    DIGITS_MEAN,
    DIGITS_SCALE,
    DIGITS_STD,
    INPUT_NAME,
    OUTPUT_NAME,
    Split,
    create_dataloader,
    digits_model_spec,
    load_digits_splits,
    load_splits,
    spec_for_split,
)
from trainers.loggers import default_loggers
from trainers.models import available_models, create_model
from trainers.run_folder import check_learning_rate, check_run_folder, remove_run
from trainers.trainer import FitResult, Trainer


@torch.no_grad()
def accuracy(model: nn.Module, loader: Any) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


def _check_resume_epochs(path: Path, epochs: int) -> None:
    """The one-cycle schedule is sized for the planned run: a resume may stop earlier, not go longer."""
    if not path.is_file():
        return  # the Trainer says there is nothing to resume
    planned = (load_checkpoint(path).get("config") or {}).get("epochs")
    if planned is not None and int(epochs) > int(planned):
        raise UsageError(
            f"{path}: this run was planned for {planned} epochs and its learning-rate schedule is sized for "
            f"that; resume with --epochs {planned} or fewer, or start a new run (another --out) for {epochs}"
        )


def one_cycle(max_lr: float) -> Any:
    """A scheduler factory: OneCycleLR over the run's optimizer steps (known at fit start)."""

    def factory(optimizer: torch.optim.Optimizer, trainer: Trainer) -> Any:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=trainer.total_steps)

    return factory


def train_digits_default(out: str | Path, epochs: int = 15, seed: int = 0, quiet: bool = False) -> Path:
    """Train the default SmallCNN on digits with the Trainer and save ``out`` (a checkpoint file).

    The run folder (config, metrics, curves) is ``<out without suffix>_run/`` beside it.
    """
    out = Path(out)
    splits = load_digits_splits(seed=seed)
    labels = splits["train"].classes
    arch = {"name": "smallcnn", "kwargs": {"num_classes": len(labels), "in_channels": 1, "width": 32}}
    torch.manual_seed(seed)
    model = create_model(arch["name"], **arch["kwargs"])
    train = create_dataloader(splits["train"], {"batch_size": 32, "seed": seed, "shuffle": True})
    val = create_dataloader(splits["val"], {"batch_size": 256, "shuffle": False})
    test = create_dataloader(splits["test"], {"batch_size": 256, "shuffle": False})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    trainer = Trainer(
        model, opt, callbacks=[LearningRateScheduler(one_cycle(3e-3), interval="batch")],
        run_dir=out.parent / f"{out.stem}_run", seed=seed, architecture=arch,
        model_spec=digits_model_spec(labels).to_dict(), labels=labels, dataset=splits["train"].meta,
        config={"recipe": "digits_default", "epochs": epochs, "seed": seed, "batch_size": 32, "lr": 3e-3},
        loggers=default_loggers(progress=not quiet),
        num_threads=1,  # 1 thread: fastest for this model, robust on busy cores
    )
    t0 = time.perf_counter()
    trainer.fit(train, val, epochs=epochs)
    payload = trainer.checkpoint_payload()
    payload["metrics"] = {"val_accuracy": accuracy(model, val), "test_accuracy": accuracy(model, test),
                          "train_seconds": time.perf_counter() - t0}
    return save_checkpoint(payload, out)


@dataclass
class TrainOutcome:
    """What :func:`train_classifier` produced."""

    run_dir: Path
    model_path: Path | None
    metrics: dict[str, float]
    result: FitResult


def train_classifier(
    out: str | Path,
    model: str = "smallcnn",
    data: str = "digits",
    epochs: int = 15,
    data_dir: str | Path | None = None,
    resume: str | None = None,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    image_size: int = 32,
    val_every_n_epochs: int = 1,
    precision: str = "fp32",
    accumulate_grad_batches: int = 1,
    patience: int = 10,
    num_threads: int | None = 1,
    quiet: bool = False,
    overwrite: bool = False,
) -> TrainOutcome:
    """Train ``model`` on ``data`` in the run folder ``out``; the best weights (by val_loss) are
    saved with their test metrics as ``out/model.pt``, ready for ``tritonkit export``.

    An existing run in ``out`` is refused unless ``resume`` (continue it) or ``overwrite`` (it is
    removed whole once the data has loaded) is given.

    Raises:
        UsageError: unknown model or data set (listing the valid ones), a bad learning rate, an
            existing run in ``out``; DataError: bad folder.
        TrainingError: non-finite loss, nothing to resume.
    """
    check_learning_rate(lr)
    replace = check_run_folder(out, resume=resume, overwrite=overwrite)
    if model not in available_models():
        raise UsageError(f"unknown model {model!r}; choose one of: {', '.join(available_models())}")
    if data not in DATASETS:
        raise UsageError(f"unknown data set {data!r}; choose one of: {', '.join(DATASETS)}")
    run_dir = Path(out)
    extra = {"image_size": image_size} if data == "imagefolder" else {}
    splits = load_splits(data, data_dir, seed=seed, **extra)
    train_split = splits["train"]
    labels = list(train_split.classes)
    arch = {"name": model, "kwargs": {"num_classes": len(labels),
                                      "in_channels": int(train_split.images.shape[1])}}
    if replace:  # only now: a bad data folder or model name leaves the old run in place
        remove_run(run_dir)
    torch.manual_seed(seed)
    net = create_model(arch["name"], **arch["kwargs"])
    flip = data == "imagefolder"
    train = create_dataloader(train_split, {"batch_size": batch_size, "seed": seed, "flip": flip})
    val = (create_dataloader(splits["val"], {"batch_size": 256, "shuffle": False})
           if len(splits["val"].labels) else None)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    callbacks = [EarlyStopping(patience=patience), ModelCheckpoint(save_top_k=1),
                 LearningRateScheduler(one_cycle(lr), interval="batch")]
    spec = spec_for_split(train_split)
    trainer = Trainer(
        net, opt, callbacks=callbacks, run_dir=run_dir, seed=seed, architecture=arch,
        model_spec=spec.to_dict(), labels=labels, dataset=train_split.meta,
        val_every_n_epochs=val_every_n_epochs, precision=precision,
        accumulate_grad_batches=accumulate_grad_batches, loggers=default_loggers(progress=not quiet),
        num_threads=num_threads,
        config={"model": model, "data": data, "data_dir": str(data_dir) if data_dir else None,
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                "image_size": image_size, "patience": patience},
    )
    if resume:
        _check_resume_epochs(trainer.checkpoint_dir / "last.pt" if str(resume) == "last" else Path(resume), epochs)
    result = trainer.fit(train, val, epochs=epochs, resume=resume)
    if result.interrupted:
        return TrainOutcome(run_dir, None, {}, result)
    if result.best_checkpoint:  # deploy the best weights, not merely the last
        net.load_state_dict(load_checkpoint(result.best_checkpoint)["model_state"])
    metrics = dict(trainer.metrics)
    if val is not None:
        metrics["val_accuracy"] = accuracy(net, val)
    if len(splits["test"].labels):
        metrics["test_accuracy"] = accuracy(
            net, create_dataloader(splits["test"], {"batch_size": 256, "shuffle": False}))
    payload = trainer.checkpoint_payload()
    payload["model_state"] = net.state_dict()
    payload["metrics"] = metrics
    path = save_checkpoint(payload, run_dir / "model.pt")
    return TrainOutcome(run_dir, path, metrics, result)
