"""Callbacks: small objects that watch a run and decide; only the :class:`~trainers.trainer.Trainer` acts.

Every hook does nothing by default, so a callback overrides only what it needs. A callback that
wants the run to end sets ``trainer.should_stop`` (and ``trainer.stop_reason``); it never breaks the
loop itself. Its state goes into the checkpoint under :attr:`Callback.state_key` so a resumed run
continues with the same history.

Hook order per epoch: ``on_epoch_start`` -> (``on_batch_start`` -> ``on_batch_end``)* ->
``on_validation_end`` (on validation epochs) -> ``on_epoch_end``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from contract.errors import UsageError
from trainers.checkpoint import atomic_write_bytes

if TYPE_CHECKING:
    from trainers.trainer import Trainer


class Callback:
    """Base class: every hook is a no-op."""

    @property
    def state_key(self) -> str:
        """Key of this callback's state in the checkpoint's ``callbacks_state``."""
        return type(self).__name__

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None: ...
    def on_batch_start(self, trainer: Trainer, batch_idx: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, batch_idx: int, loss: float) -> None: ...
    def on_optimizer_step(self, trainer: Trainer, step: int) -> None: ...
    def on_validation_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None: ...
    def on_save_checkpoint(self, trainer: Trainer, payload: dict[str, Any]) -> None: ...
    def on_load_checkpoint(self, trainer: Trainer, payload: dict[str, Any]) -> None: ...
    def on_exception(self, trainer: Trainer, exc: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def _check_mode(mode: str) -> str:
    if mode not in ("min", "max"):
        raise UsageError(f"mode {mode!r} is invalid; choose one of: min, max")
    return mode


def _improves(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return not math.isnan(value)
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


def early_stopping_decision(
    history: Sequence[float], mode: str = "min", patience: int = 10, min_delta: float = 0.0
) -> tuple[bool, str]:
    """Whether to stop after the last value of ``history``, and why. A pure function.

    A value improves on the best so far when it beats it by more than ``min_delta``. The run stops
    once the values since the best are at least ``max(patience, 1)`` (patience 0: stop at the first
    value that does not improve), or at once on NaN/inf.
    """
    _check_mode(mode)
    if not history:
        return False, ""
    if not math.isfinite(history[-1]):
        return True, f"monitored value is {history[-1]} at evaluation {len(history)}"
    best: float | None = None
    best_at = 0
    for i, value in enumerate(history):
        if _improves(value, best, mode, min_delta):
            best, best_at = value, i
    waited = len(history) - 1 - best_at
    if waited >= max(patience, 1):
        return True, (
            f"no improvement for {waited} evaluations (best {best:.6g} at evaluation {best_at + 1}, "
            f"patience {patience}, min_delta {min_delta})"
        )
    return False, ""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` validations."""

    def __init__(
        self, monitor: str = "val_loss", mode: str = "min", patience: int = 10, min_delta: float = 0.0
    ) -> None:
        if patience < 0:
            raise UsageError(f"EarlyStopping patience {patience} is negative; use 0 or more")
        self.monitor, self.mode = monitor, _check_mode(mode)
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.history: list[float] = []

    def on_validation_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise UsageError(
                f"EarlyStopping monitors {self.monitor!r} but validation gave only "
                f"{', '.join(sorted(metrics))}; set monitor to one of them"
            )
        self.history.append(float(metrics[self.monitor]))
        stop, reason = early_stopping_decision(self.history, self.mode, self.patience, self.min_delta)
        if stop:
            trainer.should_stop = True
            trainer.stop_reason = f"early stopping on {self.monitor}: {reason}"

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [float(v) for v in state.get("history", [])]


class ModelCheckpoint(Callback):
    """Keep the best ``save_top_k`` checkpoints by ``monitor`` and a resumable ``last.pt``.

    The callback decides which files to keep and asks the trainer to write them (atomically, at the
    end of the epoch, after every callback has updated its state). A new file is written before any
    file it replaces is removed, and ``index.json`` in ``save_dir`` records why
    each kept file is there.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike[str] = "checkpoints",
        monitor: str = "val_loss",
        mode: str = "min",
        save_best: bool = True,
        save_top_k: int = 1,
        save_last: bool = True,
    ) -> None:
        if save_top_k < 0:
            raise UsageError(f"ModelCheckpoint save_top_k {save_top_k} is negative; use 0 or more")
        self.save_dir = Path(save_dir)
        self.monitor, self.mode = monitor, _check_mode(mode)
        self.save_top_k = int(save_top_k) if save_best else 0
        self.save_last = save_last
        self.best: list[dict[str, Any]] = []  # {"path", "score", "epoch", "reason"}, best first
        self.last_path: str | None = None

    def directory(self, trainer: Trainer) -> Path:
        return self.save_dir if self.save_dir.is_absolute() else trainer.run_dir / self.save_dir

    @property
    def best_path(self) -> str | None:
        return self.best[0]["path"] if self.best else None

    def on_validation_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.save_top_k == 0:
            return
        if self.monitor not in metrics:
            raise UsageError(
                f"ModelCheckpoint monitors {self.monitor!r} but validation gave only "
                f"{', '.join(sorted(metrics))}; set monitor to one of them"
            )
        score = float(metrics[self.monitor])
        if not math.isfinite(score):
            return
        better = [e for e in self.best if (e["score"] < score if self.mode == "min" else e["score"] > score)
                  or e["score"] == score]
        if len(better) >= self.save_top_k:
            return  # not among the best k
        name = f"best-epoch={epoch + 1:03d}-{self.monitor}={score:.4f}.pt"
        path = self.directory(trainer) / name
        entry = {"path": str(path), "score": score, "epoch": epoch + 1, "reason": ""}
        ranked = sorted(self.best + [entry], key=lambda e: e["score"], reverse=self.mode == "max")
        keep, evicted = ranked[: self.save_top_k], ranked[self.save_top_k:]
        for i, e in enumerate(keep):
            e["reason"] = f"rank {i + 1} of top {self.save_top_k} by {self.monitor} ({self.mode})"

        def after_write() -> None:  # the new file exists; now the list and the old files change
            self.best = keep
            self._write_index(trainer)
            for e in evicted:
                if e["path"] != str(path):
                    Path(e["path"]).unlink(missing_ok=True)

        trainer.request_checkpoint(path, then=after_write)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.save_last:
            path = self.directory(trainer) / "last.pt"

            def after_write() -> None:
                self.last_path = str(path)
                self._write_index(trainer)

            trainer.request_checkpoint(path, then=after_write)

    def _write_index(self, trainer: Trainer) -> None:
        kept = [dict(e) for e in self.best]
        if self.last_path:
            kept.append({"path": self.last_path, "epoch": trainer.epoch,
                         "reason": "last: the most recent state, resumable"})
        data = json.dumps({"monitor": self.monitor, "mode": self.mode, "kept": kept}, indent=2)
        atomic_write_bytes(self.directory(trainer) / "index.json", data.encode())

    def state_dict(self) -> dict[str, Any]:
        return {"best": [dict(e) for e in self.best], "last_path": self.last_path}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = [dict(e) for e in state.get("best", [])]
        self.last_path = state.get("last_path")


SchedulerFactory = Callable[[torch.optim.Optimizer, "Trainer"], Any]


class LearningRateScheduler(Callback):
    """Steps any ``torch.optim.lr_scheduler`` per epoch or per optimizer step.

    ``scheduler`` is a scheduler instance, or a factory ``(optimizer, trainer) -> scheduler`` that
    is called at fit start (when the number of steps is known). ``ReduceLROnPlateau`` is stepped
    with ``monitor`` after each validation. :meth:`warmup_cosine` is the built-in warm-up + cosine.
    """

    def __init__(self, scheduler: Any, interval: str = "epoch", monitor: str = "val_loss") -> None:
        if interval not in ("epoch", "batch"):
            raise UsageError(f"scheduler interval {interval!r} is invalid; choose one of: epoch, batch")
        self._given = scheduler
        self.scheduler: Any = None if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
        self.interval, self.monitor = interval, monitor
        self._pending_state: dict[str, Any] | None = None

    @classmethod
    def warmup_cosine(
        cls, warmup_steps: int | None = None, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0
    ) -> LearningRateScheduler:
        """Linear warm-up then cosine decay to ``min_lr_ratio`` x base lr, stepped per batch."""
        from trainers.schedulers import warmup_cosine

        def factory(optimizer: torch.optim.Optimizer, trainer: Trainer) -> Any:
            total = max(1, trainer.total_steps)
            warm = warmup_steps if warmup_steps is not None else int(round(total * warmup_fraction))
            return warmup_cosine(optimizer, warm, total, min_lr_ratio)

        return cls(factory, interval="batch")

    @property
    def is_plateau(self) -> bool:
        return isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.scheduler is None:
            self.scheduler = self._given(trainer.optimizer, trainer)
        if self._pending_state is not None:
            self.scheduler.load_state_dict(self._pending_state)
            self._pending_state = None
        trainer.scheduler = self.scheduler

    def on_optimizer_step(self, trainer: Trainer, step: int) -> None:
        if self.interval == "batch" and not self.is_plateau:
            self.scheduler.step()

    def on_validation_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.is_plateau:
            if self.monitor not in metrics:
                raise UsageError(
                    f"ReduceLROnPlateau monitors {self.monitor!r} but validation gave only "
                    f"{', '.join(sorted(metrics))}; set monitor to one of them"
                )
            self.scheduler.step(float(metrics[self.monitor]))

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.interval == "epoch" and not self.is_plateau:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sched = state.get("scheduler")
        if sched is None:
            return
        if self.scheduler is None:
            self._pending_state = sched  # the factory runs at fit start
        else:
            self.scheduler.load_state_dict(sched)
