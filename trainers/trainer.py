"""The Trainer: one readable loop, with callbacks and loggers around it and resumable checkpoints.

``fit`` reads top to bottom: for each epoch, ``train_epoch`` (``train_step`` per batch, backward,
an optimizer step every ``accumulate_grad_batches`` batches), ``validate_epoch`` every
``val_every_n_epochs``, ``log_metrics``, callbacks. Subclass and override ``train_step(batch)``
(return the loss tensor) to change what one step computes; checkpoints, early stopping,
scheduling, logging and resuming keep working because they live in ``fit``/callbacks/loggers.

Each run has a folder ``run_dir`` (``runs/<name>/``): ``config.json``, ``checkpoints/`` and what
the loggers write (``trainers.loggers.default_loggers``: ``metrics.jsonl``, one JSON object per
epoch, appended; ``curves.png``; TensorBoard events under ``tb/`` when asked and installed).

SIGINT/SIGTERM during ``fit`` finish the current optimizer step, write a resumable
``checkpoints/last.pt`` and return with ``result.interrupted`` set; ``fit(..., resume="last")``
continues from it. Batch order is a function of (seed, epoch), and RNG states are saved
(``trainers.replay``), so an interrupted and resumed run ends with bitwise the same weights as an
uninterrupted one on CPU.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from contract.errors import UsageError
from trainers.callbacks import Callback, ModelCheckpoint, resumable_checkpoint
from trainers.interrupts import catch_signals
from trainers.loggers import Logger, default_loggers
from trainers.models import architecture_of
from trainers.replay import EpochSampler, batch_size_of, replayable_loader, seed_everything
from trainers.run_state import NonFiniteLossError, ResumableState, TrainingError

__all__ = ["FitResult", "NonFiniteLossError", "Trainer", "TrainingError", "create_trainer"]


@dataclass
class FitResult:
    """What ``fit`` did: per-epoch metrics, why it stopped, where the checkpoints are."""

    history: list[dict[str, float]] = field(default_factory=list)
    epochs_completed: int = 0
    steps: int = 0
    stop_reason: str = ""
    interrupted: str | None = None  # "SIGINT"/"SIGTERM" when a signal ended the run
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None
    run_dir: str = ""
    seconds: float = 0.0


class Trainer(ResumableState):
    """Trains a classifier; subclass to change ``train_step``/``validate_epoch``/``evaluate``.

    Args:
        model: the network; built with ``create_model`` its architecture is recorded automatically.
        optimizer: defaults to AdamW(lr=1e-3).
        loss_fn: defaults to cross-entropy.
        callbacks: e.g. ``[EarlyStopping(), ModelCheckpoint(), LearningRateScheduler(...)]``.
        run_dir: the run folder (``runs/<name>``); default ``runs/run-<time>``.
        val_every_n_epochs: validate every n epochs (and always after the last one).
        precision: "fp32" or "bf16" (``torch.autocast`` on the model's device).
        accumulate_grad_batches: batches per optimizer step.
        max_grad_norm: clip gradients to this norm when set.
        seed: seeds torch/numpy/python at fit start and the batch order of every epoch.
        architecture / model_spec / labels / dataset: written into checkpoints (``trainers.checkpoint``).
        config: free-form JSON-serializable settings recorded in ``config.json`` and checkpoints.
        loggers: where metrics and messages go; default ``default_loggers()`` (metrics.jsonl,
            curves.png, progress bar). ``default_loggers(progress=False, tensorboard=True)`` etc.
        handle_signals: catch SIGINT/SIGTERM during fit (main thread only).
        num_threads: torch intra-op threads during fit (restored after). Small models train
            fastest on 1, and 2 threads on 2 shared, busy cores can be 10x slower than 1.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: nn.Module | None = None,
        callbacks: Sequence[Callback] | None = None,
        *,
        run_dir: str | Path | None = None,
        val_every_n_epochs: int = 1,
        precision: str = "fp32",
        accumulate_grad_batches: int = 1,
        max_grad_norm: float | None = None,
        seed: int = 0,
        architecture: dict[str, Any] | None = None,
        model_spec: dict[str, Any] | None = None,
        labels: Sequence[str] | None = None,
        dataset: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        loggers: Sequence[Logger] | None = None,
        handle_signals: bool = True,
        num_threads: int | None = None,
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise UsageError(f"precision {precision!r} is invalid; choose one of: fp32, bf16")
        if accumulate_grad_batches < 1:
            raise UsageError(f"accumulate_grad_batches {accumulate_grad_batches} must be 1 or more")
        if val_every_n_epochs < 1:
            raise UsageError(f"val_every_n_epochs {val_every_n_epochs} must be 1 or more")
        self.model = model
        self.optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.callbacks: list[Callback] = list(callbacks or [])
        self.loggers: list[Logger] = list(default_loggers() if loggers is None else loggers)
        self.run_dir = Path(run_dir) if run_dir else Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
        self.val_every_n_epochs = int(val_every_n_epochs)
        self.precision = precision
        self.accumulate_grad_batches = int(accumulate_grad_batches)
        self.max_grad_norm = max_grad_norm
        self.seed = int(seed)
        self.architecture = architecture or architecture_of(model)
        self.model_spec = model_spec
        self.labels = list(labels) if labels is not None else None
        self.dataset = dict(dataset or {})
        self.config = dict(config or {})
        self.handle_signals = handle_signals
        self.num_threads = num_threads
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        # State that fit() moves forward and a resumable checkpoint stores.
        self.epoch = 0  # completed epochs
        self.step = 0  # optimizer steps
        self.batch_in_epoch = 0  # batches done in the current (unfinished) epoch
        self.max_epochs = 0
        self.total_steps = 0
        self.history: list[dict[str, float]] = []
        self.metrics: dict[str, float] = {}
        self.scheduler: Any = None
        self.should_stop = False
        self.stop_reason = ""
        self.train_loader: DataLoader | None = None
        self.val_loader: Any = None
        self.epoch_sums: list[float] = [0.0, 0]  # loss*samples, samples in the current epoch
        self._signal: str | None = None
        self.checkpoint_requests: list[tuple[Path, Callable[[], None] | None]] = []

    # ---------------------------------------------------------------- the loop
    def fit(
        self,
        train_data: DataLoader | Dataset,
        val_data: Any = None,
        epochs: int = 10,
        resume: str | Path | None = None,
    ) -> FitResult:
        """Train for ``epochs`` (total, counting epochs done before a resume).

        Raises:
            UsageError: bad settings, two callbacks with one state key, ambiguous checkpoint folders.
            TrainingError: non-finite loss (the last good checkpoint is kept), nothing to resume.
            CheckpointError: the resume checkpoint is unreadable or of another architecture.
        """
        if epochs < 1:
            raise UsageError(f"epochs {epochs} must be 1 or more")
        self._check_state_keys()
        t0 = time.perf_counter()
        self.max_epochs = int(epochs)
        self.train_loader = replayable_loader(train_data, self.seed)
        self.describe_from(train_data)
        self.val_loader = val_data
        per_epoch = math.ceil(len(self.train_loader) / self.accumulate_grad_batches)
        self.total_steps = per_epoch * self.max_epochs
        self.should_stop, self.stop_reason, self._signal = False, "", None
        seed_everything(self.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        if resume is not None:
            self.resume_from(resume)
        self.write_config()
        for lg in self.loggers:
            lg.start(self)
        threads_before = torch.get_num_threads()
        try:
            with catch_signals(self.handle_signals, self._on_signal):
                if self.num_threads:
                    torch.set_num_threads(self.num_threads)
                while self.epoch < self.max_epochs and not self.should_stop and not self._signal:
                    self._run_epoch(self.epoch)
                if self._signal:
                    self._save_interrupted()
                else:
                    for cb in self.callbacks:
                        cb.on_fit_end(self)
        except BaseException as exc:
            for cb in self.callbacks:
                cb.on_exception(self, exc)
            raise
        finally:
            torch.set_num_threads(threads_before)
            for lg in self.loggers:
                lg.finish(self)
        if not self.stop_reason and not self._signal:
            self.stop_reason = f"completed {self.epoch} epochs"
        last = self.checkpoint_dir / "last.pt"
        return FitResult(
            history=list(self.history),
            epochs_completed=self.epoch,
            steps=self.step,
            stop_reason=self.stop_reason,
            interrupted=self._signal,
            last_checkpoint=str(last) if last.is_file() else None,
            best_checkpoint=self.best_checkpoint,
            run_dir=str(self.run_dir),
            seconds=time.perf_counter() - t0,
        )

    def describe_from(self, data: Any) -> None:
        """Checkpoints must be self-describing (export, evaluate and deploy read them): take the input
        spec, labels and data set from a loader made by ``create_dataloader`` where none was given."""
        spec = getattr(data, "model_spec", None)
        if self.model_spec is None and spec is not None:
            self.model_spec = spec.to_dict()
        if self.labels is None and getattr(data, "labels", None) is not None:
            self.labels = list(data.labels)
        if not self.dataset and getattr(data, "dataset_meta", None):
            self.dataset = dict(data.dataset_meta)

    def _run_epoch(self, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        metrics: dict[str, float] = {"epoch": epoch + 1}
        metrics.update(self.train_epoch(epoch))
        if self._signal:
            return
        self.epoch = epoch + 1
        self.batch_in_epoch = 0
        if self.val_loader is not None and (
            self.epoch % self.val_every_n_epochs == 0 or self.epoch == self.max_epochs
        ):
            val = self.validate_epoch(epoch)
            metrics.update(val)
            for cb in self.callbacks:
                cb.on_validation_end(self, epoch, val)
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        self.metrics = dict(metrics)
        self.log_metrics(metrics)
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, metrics)
        self.flush_checkpoint_requests()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data; returns ``{"train_loss", "samples_per_s"}``."""
        assert self.train_loader is not None
        self.model.train()
        sampler = self.train_loader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.epoch = epoch
            sampler.start = self.batch_in_epoch * int(self.train_loader.batch_size or 1)
        if self.batch_in_epoch == 0:
            self.epoch_sums = [0.0, 0]
        n_batches = self.batch_in_epoch + len(self.train_loader)
        for lg in self.loggers:
            lg.train_epoch_start(self, epoch, n_batches)
        t0, seen = time.perf_counter(), 0
        accum = self.accumulate_grad_batches
        for batch in self.train_loader:
            bi = self.batch_in_epoch
            for cb in self.callbacks:
                cb.on_batch_start(self, bi)
            with self.autocast():
                loss = self.train_step(batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                self._non_finite(value, epoch, bi)
            (loss / accum if accum > 1 else loss).backward()
            self.batch_in_epoch += 1
            n = batch_size_of(batch)
            seen += n
            self.epoch_sums[0] += value * n
            self.epoch_sums[1] += n
            if self.batch_in_epoch % accum == 0 or self.batch_in_epoch == n_batches:
                self.optimizer_step()
            rate = seen / max(time.perf_counter() - t0, 1e-9)
            for lg in self.loggers:
                lg.train_batch_end(self, value, rate)
            for cb in self.callbacks:
                cb.on_batch_end(self, bi, value)
            if self._signal and self.batch_in_epoch % accum == 0:
                break  # the step is finished; fit saves a resumable checkpoint
        for lg in self.loggers:
            lg.train_epoch_end(self)
        elapsed = max(time.perf_counter() - t0, 1e-9)
        return {
            "train_loss": self.epoch_sums[0] / max(self.epoch_sums[1], 1),
            "samples_per_s": seen / elapsed,
        }

    def train_step(self, batch: Any) -> torch.Tensor:
        """Loss of one batch (override to change it). The trainer does backward and the step."""
        x, y = self.to_device(batch)
        return self.loss_fn(self.model(x), y)

    def optimizer_step(self) -> None:
        """Clip (optionally), step, zero the gradients, advance ``step`` and tell the callbacks."""
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        for cb in self.callbacks:
            cb.on_optimizer_step(self, self.step)

    def validate_epoch(self, epoch: int) -> dict[str, float]:
        """Validation metrics, prefixed ``val_`` (``val_loss``, ``val_accuracy``)."""
        return {f"val_{k}": v for k, v in self.evaluate(self.val_loader).items()}

    @torch.no_grad()
    def evaluate(self, loader: Any = None) -> dict[str, float]:
        """Mean loss and top-1 accuracy over ``loader`` (default: the validation data)."""
        loader = loader if loader is not None else self.val_loader
        if loader is None:
            raise UsageError("evaluate() needs a loader; pass one or give fit() val_data")
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct, total = 0.0, 0, 0
        for batch in loader:
            x, y = self.to_device(batch)
            with self.autocast():
                logits = self.model(x)
                loss = self.loss_fn(logits, y)
            n = int(y.shape[0])
            loss_sum += float(loss) * n
            correct += int((logits.argmax(1) == y).sum())
            total += n
        self.model.train(was_training)
        return {"loss": loss_sum / max(total, 1), "accuracy": correct / max(total, 1)}

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Record one epoch in ``history`` and hand it to every logger."""
        self.history.append({k: int(v) if k == "epoch" else float(v) for k, v in metrics.items()})
        for lg in self.loggers:
            lg.log_metrics(self, metrics)

    def say(self, line: str) -> None:
        """A one-line message for the user, through the loggers (the progress bar prints it)."""
        for lg in self.loggers:
            lg.log_message(self, line)

    # ---------------------------------------------------------------- helpers
    def autocast(self) -> Any:
        """bf16 autocast when ``precision="bf16"``, else nothing."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def to_device(self, batch: Any) -> Any:
        if isinstance(batch, (list, tuple)):
            return type(batch)(b.to(self.device) if torch.is_tensor(b) else b for b in batch)
        return batch.to(self.device) if torch.is_tensor(batch) else batch

    @property
    def checkpoint_dir(self) -> Path:
        """Where ``last.pt`` lives: the folder of the ModelCheckpoint that saves it (see
        ``trainers.callbacks.resumable_checkpoint``), else ``run_dir/checkpoints``."""
        ckpt = resumable_checkpoint(self.callbacks)
        return ckpt.directory(self) if ckpt else self.run_dir / "checkpoints"

    @property
    def best_checkpoint(self) -> str | None:
        """The best checkpoint so far: the resumable ModelCheckpoint's first, else any other's."""
        first = resumable_checkpoint(self.callbacks)
        ckpts = [first] + [cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint) and cb is not first]
        return next((cb.best_path for cb in ckpts if cb is not None and cb.best_path), None)

    def _check_state_keys(self) -> None:
        """Refuse two callbacks whose states would overwrite each other in the checkpoint."""
        twice = [key for key, n in Counter(cb.state_key for cb in self.callbacks).items() if n > 1]
        if twice:
            raise UsageError(f"two callbacks share the state key {twice[0]!r}; give them different settings "
                             "(monitor, mode or save_dir) so each resumes with its own state")
        resumable_checkpoint(self.callbacks)  # refuses ambiguous last.pt folders before training

    def _non_finite(self, value: float, epoch: int, batch_idx: int) -> None:
        last = self.checkpoint_dir / "last.pt"
        kept = (f"last good checkpoint kept: {last} (epoch {self.epoch})" if last.is_file()
                else "no checkpoint was saved before it")
        raise NonFiniteLossError(
            f"loss became {value} at step {self.step + 1} (epoch {epoch + 1}, batch {batch_idx + 1}); "
            f"training stopped, {kept}; lower the learning rate or check the data",
            step=self.step + 1,
        )

    # ---------------------------------------------------------------- interrupts
    def _save_interrupted(self) -> None:
        """A signal ended the run: write the resumable ``last.pt`` and say how to continue."""
        path = self.checkpoint_dir / "last.pt"
        self.save_checkpoint(path)
        self.stop_reason = (
            f"interrupted by {self._signal} at epoch {self.epoch + 1}, step {self.step}; "
            f"resumable checkpoint {path}; resume with fit(..., resume='last') or "
            f"'tritonkit train ... --resume last'"
        )
        self.say(self.stop_reason)

    def _on_signal(self, name: str) -> None:
        if self._signal:  # a second signal: stop now
            raise KeyboardInterrupt
        self._signal = name
        self.say(f"{self._signal} received: finishing the current step, then saving")


def create_trainer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    callbacks: Sequence[Callback] | None = None,
    trainer_class: type[Trainer] = Trainer,
    **kwargs: Any,
) -> Trainer:
    """Build a :class:`Trainer` (or ``trainer_class``); keyword arguments go to its constructor."""
    return trainer_class(model, optimizer=optimizer, callbacks=callbacks, **kwargs)
