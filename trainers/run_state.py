"""The state a run saves and restores: the resumable checkpoint payload and ``config.json``.

:class:`ResumableState` is a mixin of the Trainer, kept apart so the training loop in
``trainers.trainer`` reads on one screen. It writes every checkpoint key that
``trainers.checkpoint`` documents and puts all of them back on resume (model, optimizer, scheduler,
callback states under their settings-bearing keys, RNG states, position inside the epoch).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contract.errors import CheckpointError, TritonkitError, UsageError
from contract.fileio import atomic_write_bytes
from trainers.callbacks import Callback
from trainers.checkpoint import load_checkpoint, save_checkpoint
from trainers.replay import capture_rng_state, restore_rng_state


class TrainingError(TritonkitError):
    """Training cannot go on (non-finite loss, nothing to resume from)."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the message names the step."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def load_callback_states(callbacks: Sequence[Callback], states: dict[str, Any]) -> None:
    """Give each callback the state saved under its key.

    Checkpoints written before state keys carried settings used the bare class name; a callback
    reads that only when it is the one instance of its class (otherwise it is ambiguous).
    """
    classes = Counter(type(cb).__qualname__ for cb in callbacks)
    for cb in callbacks:
        legacy = type(cb).__qualname__ if classes[type(cb).__qualname__] == 1 else None
        state = states.get(cb.state_key, states.get(legacy) if legacy else None)
        if state is not None:
            cb.load_state_dict(state)


class ResumableState:
    """Checkpoint payload, checkpoint requests, resume and ``config.json`` for the Trainer."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    callbacks: list[Callback]
    scheduler: Any
    run_dir: Path
    architecture: dict[str, Any] | None
    model_spec: dict[str, Any] | None
    labels: list[str] | None
    dataset: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, float]
    history: list[dict[str, float]]
    epoch: int
    step: int
    batch_in_epoch: int
    epoch_sums: list[float]  # loss*samples, samples in the current epoch
    seed: int
    max_epochs: int
    train_loader: Any
    val_every_n_epochs: int
    precision: str
    accumulate_grad_batches: int
    max_grad_norm: float | None
    checkpoint_requests: list[tuple[Path, Callable[[], None] | None]]

    @property
    def checkpoint_dir(self) -> Path:
        raise NotImplementedError

    def say(self, line: str) -> None:
        raise NotImplementedError

    def checkpoint_payload(self) -> dict[str, Any]:
        """Everything ``trainers.checkpoint`` documents, including what resuming needs."""
        if self.architecture is None:
            raise UsageError(
                "the trainer does not know the model's architecture; build the model with "
                "trainers.models.create_model or pass architecture={'name':..., 'kwargs':...}"
            )
        payload: dict[str, Any] = {
            "architecture": self.architecture,
            "model_spec": self.model_spec,
            "labels": self.labels,
            "model_state": self.model.state_dict(),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "epoch": self.epoch,
            "step": self.step,
            "dataset": self.dataset,
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict() if self.scheduler is not None else None,
            "callbacks_state": {cb.state_key: cb.state_dict() for cb in self.callbacks},
            "rng_state": capture_rng_state(),
            "config": self.config,
            "history": list(self.history),
            "resume": {
                "batch_in_epoch": self.batch_in_epoch,
                "epoch_loss_sum": float(self.epoch_sums[0]),
                "epoch_samples": int(self.epoch_sums[1]),
                "seed": self.seed,
                "max_epochs": self.max_epochs,
            },
        }
        for cb in self.callbacks:
            cb.on_save_checkpoint(self, payload)  # type: ignore[arg-type]
        return payload

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write a resumable checkpoint atomically at ``path``."""
        return save_checkpoint(self.checkpoint_payload(), path)

    def request_checkpoint(self, path: str | Path, then: Callable[[], None] | None = None) -> None:
        """Ask for a checkpoint at the end of this epoch (after every callback has run).

        ``then`` runs after the file is written (e.g. to remove the file it replaces).
        """
        self.checkpoint_requests.append((Path(path), then))

    def flush_checkpoint_requests(self) -> None:
        """Write the requested checkpoints, each followed by its ``then``."""
        requests, self.checkpoint_requests = self.checkpoint_requests, []
        for path, then in requests:
            self.save_checkpoint(path)
            if then is not None:
                then()

    def resume_from(self, resume: str | Path) -> None:
        """Restore the run from ``resume`` ("last": ``checkpoint_dir/last.pt``, or a path)."""
        path = self.checkpoint_dir / "last.pt" if str(resume) == "last" else Path(resume)
        if not path.is_file():
            raise TrainingError(
                f"cannot resume: no checkpoint at {path}; run without resume to start fresh, "
                "or give the path of a checkpoint"
            )
        payload = load_checkpoint(path)
        arch = payload.get("architecture")
        if self.architecture is not None and arch != self.architecture:
            raise CheckpointError(
                f"{path}: checkpoint architecture {arch} differs from this run's {self.architecture}; "
                "resume with the same model settings"
            )
        try:
            self.model.load_state_dict(payload["model_state"])
            if payload.get("optimizer_state") is not None:
                self.optimizer.load_state_dict(payload["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: checkpoint does not fit this model ({first})") from None
        load_callback_states(self.callbacks, payload.get("callbacks_state") or {})
        for cb in self.callbacks:
            cb.on_load_checkpoint(self, payload)  # type: ignore[arg-type]
        if self.scheduler is not None and payload.get("scheduler_state") is not None:
            self.scheduler.load_state_dict(payload["scheduler_state"])
        self.epoch, self.step = int(payload.get("epoch", 0)), int(payload.get("step", 0))
        info = payload.get("resume") or {}
        self.batch_in_epoch = int(info.get("batch_in_epoch", 0))
        self.epoch_sums = [float(info.get("epoch_loss_sum", 0.0)), int(info.get("epoch_samples", 0))]
        self.history = [dict(m) for m in payload.get("history") or []]
        self.metrics = dict(payload.get("metrics") or {})
        restore_rng_state(payload.get("rng_state"))
        self.say(f"resumed from {path} at epoch {self.epoch + 1}, step {self.step}")

    def write_config(self) -> None:
        """``config.json``: the run's settings, for people and for ``tritonkit train --resume``."""
        cfg = {
            "architecture": self.architecture,
            "optimizer": {"class": type(self.optimizer).__name__,
                          **{k: v for k, v in self.optimizer.defaults.items()
                             if isinstance(v, (int, float, str, bool, tuple, list, type(None)))}},
            "loss_fn": type(self.loss_fn).__name__,
            "callbacks": [type(cb).__name__ for cb in self.callbacks],
            "epochs": self.max_epochs,
            "batch_size": self.train_loader.batch_size if self.train_loader else None,
            "val_every_n_epochs": self.val_every_n_epochs,
            "precision": self.precision,
            "accumulate_grad_batches": self.accumulate_grad_batches,
            "max_grad_norm": self.max_grad_norm,
            "seed": self.seed,
            "dataset": self.dataset,
            "user": self.config,
        }
        text = json.dumps(cfg, indent=2, sort_keys=True, default=str)
        atomic_write_bytes(self.run_dir / "config.json", text.encode())
