"""The Trainer: one readable loop, with callbacks around it and resumable checkpoints.

``fit`` reads top to bottom: for each epoch, ``train_epoch`` (``train_step`` per batch, backward,
an optimizer step every ``accumulate_grad_batches`` batches), ``validate_epoch`` every
``val_every_n_epochs``, ``log_metrics``, callbacks. Subclass and override ``train_step(batch)``
(return the loss tensor) to change what one step computes; checkpoints, early stopping,
scheduling, logging and resuming keep working because they live in ``fit``/callbacks.

Each run has a folder ``run_dir`` (``runs/<name>/``): ``config.json``, ``metrics.jsonl`` (one JSON
object per epoch), ``checkpoints/`` and ``curves.png``; TensorBoard event files under ``tb/`` when
``tensorboard=True`` and the package is installed.

SIGINT/SIGTERM during ``fit`` finish the current optimizer step, write a resumable
``checkpoints/last.pt`` and return with ``result.interrupted`` set; ``fit(..., resume="last")``
continues from it. Batch order is a function of (seed, epoch), and RNG states are saved, so an
interrupted and resumed run ends with bitwise the same weights as an uninterrupted one on CPU.
"""

from __future__ import annotations

import io
import json
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from contract.errors import CheckpointError, TritonkitError, UsageError
from trainers.callbacks import Callback, ModelCheckpoint
from trainers.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from trainers.models import architecture_of


class TrainingError(TritonkitError):
    """Training cannot go on (non-finite loss, nothing to resume from)."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the message names the step."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class EpochSampler(Sampler[int]):
    """Sample order that is a pure function of (seed, epoch), so it can be replayed on resume.

    ``start`` skips the first samples of the epoch (the batches a resumed run already did).
    """

    def __init__(self, n: int, shuffle: bool, seed: int) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch, self.start = 0, 0

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=gen)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


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


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return int(first.shape[0]) if hasattr(first, "shape") else 1


def capture_rng_state() -> dict[str, Any]:
    """torch/numpy/python RNG states as tensors, lists and numbers (weights-only loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, pystate, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [version, list(pystate), gauss_next],
    }


def restore_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, pystate, gauss_next = state["python"]
    random.setstate((version, tuple(pystate), gauss_next))


class Trainer:
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
        model_spec / labels / dataset: written into checkpoints (see ``trainers.checkpoint``).
        config: free-form JSON-serializable settings recorded in ``config.json`` and checkpoints.
        progress: show a tqdm bar per epoch (loss and samples/s).
        tensorboard: also write TensorBoard events when ``torch.utils.tensorboard`` works.
        handle_signals: catch SIGINT/SIGTERM during fit (main thread only).
        curves: write ``curves.png`` (matplotlib, Agg) at the end of fit.
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
        progress: bool = True,
        tensorboard: bool = False,
        handle_signals: bool = True,
        curves: bool = True,
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
        self.progress = progress
        self.tensorboard = tensorboard
        self.handle_signals = handle_signals
        self.curves = curves
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
        self._epoch_sums = [0.0, 0]  # loss*samples, samples in the current epoch
        self._signal: str | None = None
        self._requests: list[tuple[Path, Any]] = []
        self._tb: Any = None

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
            TrainingError: non-finite loss (the last good checkpoint is kept), nothing to resume.
            CheckpointError: the resume checkpoint is unreadable or of another architecture.
        """
        if epochs < 1:
            raise UsageError(f"epochs {epochs} must be 1 or more")
        t0 = time.perf_counter()
        self.max_epochs = int(epochs)
        self.train_loader = self._replayable_loader(train_data)
        self.val_loader = val_data
        per_epoch = math.ceil(len(self.train_loader) / self.accumulate_grad_batches)
        self.total_steps = per_epoch * self.max_epochs
        self.should_stop, self.stop_reason, self._signal = False, "", None
        self._seed_everything()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        if resume is not None:
            self._resume(resume)
        self._write_config()
        self._open_tensorboard()
        old_handlers = self._install_signal_handlers()
        threads_before = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            while self.epoch < self.max_epochs and not self.should_stop:
                self._run_epoch(self.epoch)
                if self._signal:
                    break
            if self._signal:
                path = self.checkpoint_dir / "last.pt"
                self.save_checkpoint(path)
                self.stop_reason = (
                    f"interrupted by {self._signal} at epoch {self.epoch + 1}, step {self.step}; "
                    f"resumable checkpoint {path}; resume with fit(..., resume='last') or "
                    f"'tritonkit train ... --resume last'"
                )
                self._say(self.stop_reason)
            else:
                for cb in self.callbacks:
                    cb.on_fit_end(self)
        except NonFiniteLossError as exc:
            for cb in self.callbacks:
                cb.on_exception(self, exc)
            raise
        except BaseException as exc:
            for cb in self.callbacks:
                cb.on_exception(self, exc)
            raise
        finally:
            torch.set_num_threads(threads_before)
            self._restore_signal_handlers(old_handlers)
            self._write_curves()
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        if not self.stop_reason and not self._signal:
            self.stop_reason = f"completed {self.epoch} epochs"
        ckpt = next((cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)), None)
        last = self.checkpoint_dir / "last.pt"
        return FitResult(
            history=list(self.history),
            epochs_completed=self.epoch,
            steps=self.step,
            stop_reason=self.stop_reason,
            interrupted=self._signal,
            last_checkpoint=str(last) if last.is_file() else None,
            best_checkpoint=ckpt.best_path if ckpt else None,
            run_dir=str(self.run_dir),
            seconds=time.perf_counter() - t0,
        )

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
        self._flush_checkpoint_requests()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data; returns ``{"train_loss", "samples_per_s"}``."""
        assert self.train_loader is not None
        self.model.train()
        sampler = self.train_loader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.epoch = epoch
            sampler.start = self.batch_in_epoch * int(self.train_loader.batch_size or 1)
        if self.batch_in_epoch == 0:
            self._epoch_sums = [0.0, 0]
        n_batches = self.batch_in_epoch + len(self.train_loader)
        bar = self._progress_bar(epoch, n_batches)
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
            n = _batch_size(batch)
            seen += n
            self._epoch_sums[0] += value * n
            self._epoch_sums[1] += n
            if self.batch_in_epoch % accum == 0 or self.batch_in_epoch == n_batches:
                self.optimizer_step()
            if bar is not None:
                bar.update(1)
                if bar.n % 10 == 0 or bar.n == n_batches:
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{value:.4f}", samples_s=f"{rate:.0f}",
                                    refresh=bar.n == n_batches)
            for cb in self.callbacks:
                cb.on_batch_end(self, bi, value)
            if self._signal and self.batch_in_epoch % accum == 0:
                break  # the step is finished; fit saves a resumable checkpoint
        if bar is not None:
            bar.close()
        elapsed = max(time.perf_counter() - t0, 1e-9)
        return {
            "train_loss": self._epoch_sums[0] / max(self._epoch_sums[1], 1),
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
        """Record one epoch: history, ``metrics.jsonl`` (rewritten atomically), TensorBoard, a line."""
        self.history.append({k: int(v) if k == "epoch" else float(v) for k, v in metrics.items()})
        lines = "".join(json.dumps(m, sort_keys=True) + "\n" for m in self.history)
        atomic_write_bytes(self.run_dir / "metrics.jsonl", lines.encode())
        if self._tb is not None:
            for k, v in metrics.items():
                if k != "epoch":
                    self._tb.add_scalar(k, float(v), int(metrics.get("epoch", len(self.history))))
        shown = " ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
            if k not in ("epoch", "lr")
        )
        self._say(f"epoch {int(metrics.get('epoch', 0))}/{self.max_epochs} {shown}")

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
        ckpt = next((cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)), None)
        return ckpt.directory(self) if ckpt else self.run_dir / "checkpoints"

    def _say(self, line: str) -> None:
        if self.progress:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)

    def _progress_bar(self, epoch: int, total: int) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=self.batch_in_epoch, desc=f"epoch {epoch + 1}/{self.max_epochs}",
                    leave=False, mininterval=0.5, unit="batch", file=sys.stderr)

    def _replayable_loader(self, data: DataLoader | Dataset) -> DataLoader:
        """A loader whose batch order is a function of (seed, epoch) and that can start mid-epoch."""
        if isinstance(data, DataLoader):
            if data.batch_size is None:
                raise UsageError("train_data uses a custom batch_sampler; give a batch_size instead")
            shuffle = isinstance(data.sampler, RandomSampler)
            dataset, batch_size = data.dataset, data.batch_size
            extra = {"collate_fn": data.collate_fn, "num_workers": data.num_workers,
                     "drop_last": data.drop_last}
        elif isinstance(data, Dataset):
            shuffle, dataset, batch_size, extra = True, data, 64, {}
        else:
            raise UsageError(f"train_data is a {type(data).__name__}; give a DataLoader or a Dataset")
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise UsageError("train_data is empty; give at least one training sample")
        sampler = EpochSampler(len(dataset), shuffle, self.seed)  # type: ignore[arg-type]
        # A private generator: creating the loader's iterator must not draw from the global RNG.
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                          generator=torch.Generator().manual_seed(self.seed), **extra)

    def _seed_everything(self) -> None:
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        random.seed(self.seed)

    def _non_finite(self, value: float, epoch: int, batch_idx: int) -> None:
        last = self.checkpoint_dir / "last.pt"
        kept = (f"last good checkpoint kept: {last} (epoch {self.epoch})" if last.is_file()
                else "no checkpoint was saved before it")
        raise NonFiniteLossError(
            f"loss became {value} at step {self.step + 1} (epoch {epoch + 1}, batch {batch_idx + 1}); "
            f"training stopped, {kept}; lower the learning rate or check the data",
            step=self.step + 1,
        )

    # ---------------------------------------------------------------- checkpoints
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
                "epoch_loss_sum": float(self._epoch_sums[0]),
                "epoch_samples": int(self._epoch_sums[1]),
                "seed": self.seed,
                "max_epochs": self.max_epochs,
            },
        }
        for cb in self.callbacks:
            cb.on_save_checkpoint(self, payload)
        return payload

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write a resumable checkpoint atomically at ``path``."""
        return save_checkpoint(self.checkpoint_payload(), path)

    def request_checkpoint(self, path: str | Path, then: Any = None) -> None:
        """Ask for a checkpoint at the end of this epoch (after every callback has run).

        ``then`` runs after the file is written (e.g. to remove the file it replaces).
        """
        self._requests.append((Path(path), then))

    def _flush_checkpoint_requests(self) -> None:
        requests, self._requests = self._requests, []
        for path, then in requests:
            self.save_checkpoint(path)
            if then is not None:
                then()

    def _resume(self, resume: str | Path) -> None:
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
        states = payload.get("callbacks_state") or {}
        for cb in self.callbacks:
            if cb.state_key in states:
                cb.load_state_dict(states[cb.state_key])
            cb.on_load_checkpoint(self, payload)
        if self.scheduler is not None and payload.get("scheduler_state") is not None:
            self.scheduler.load_state_dict(payload["scheduler_state"])
        self.epoch, self.step = int(payload.get("epoch", 0)), int(payload.get("step", 0))
        info = payload.get("resume") or {}
        self.batch_in_epoch = int(info.get("batch_in_epoch", 0))
        self._epoch_sums = [float(info.get("epoch_loss_sum", 0.0)), int(info.get("epoch_samples", 0))]
        self.history = [dict(m) for m in payload.get("history") or []]
        self.metrics = dict(payload.get("metrics") or {})
        restore_rng_state(payload.get("rng_state"))
        self._say(f"resumed from {path} at epoch {self.epoch + 1}, step {self.step}")

    # ---------------------------------------------------------------- run folder
    def _write_config(self) -> None:
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

    def _write_curves(self) -> None:
        if not self.history or not self.curves:
            return
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.5))
        ax_loss, ax_acc = fig.subplots(1, 2)
        epochs = [m.get("epoch", i + 1) for i, m in enumerate(self.history)]
        for key in ("train_loss", "val_loss"):
            pts = [(e, m[key]) for e, m in zip(epochs, self.history) if key in m]
            if pts:
                ax_loss.plot(*zip(*pts), marker="o", ms=3, label=key)
        for key in ("val_accuracy",):
            pts = [(e, m[key]) for e, m in zip(epochs, self.history) if key in m]
            if pts:
                ax_acc.plot(*zip(*pts), marker="o", ms=3, label=key)
        ax_loss.set_xlabel("epoch")
        ax_loss.set_title("loss")
        ax_loss.legend()
        ax_acc.set_xlabel("epoch")
        ax_acc.set_title("accuracy")
        if ax_acc.lines:
            ax_acc.legend()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        atomic_write_bytes(self.run_dir / "curves.png", buf.getvalue())

    def _open_tensorboard(self) -> None:
        if not self.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self._say("tensorboard is not installed; skipping event files (pip install tensorboard)")
            return
        self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"))

    # ---------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict[int, Any]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}
        old: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            if self._signal:  # a second signal: stop now
                raise KeyboardInterrupt
            self._signal = signal.Signals(signum).name
            self._say(f"{self._signal} received: finishing the current step, then saving")

        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)


def create_trainer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    callbacks: Sequence[Callback] | None = None,
    trainer_class: type[Trainer] = Trainer,
    **kwargs: Any,
) -> Trainer:
    """Build a :class:`Trainer` (or ``trainer_class``); keyword arguments go to its constructor."""
    return trainer_class(model, optimizer=optimizer, callbacks=callbacks, **kwargs)
