"""LearningRateScheduler: steps a torch LR scheduler per epoch, per optimizer step or on plateau."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from contract.errors import UsageError
from trainers.callbacks.base import Callback, TrainerLike, require_metric
from trainers.schedulers import warmup_cosine

SchedulerFactory = Callable[[torch.optim.Optimizer, TrainerLike], Any]


class LearningRateScheduler(Callback):
    """Steps any ``torch.optim.lr_scheduler`` per epoch or per optimizer step.

    ``scheduler`` is a scheduler instance, or a factory ``(optimizer, trainer) -> scheduler`` that
    is called at fit start (when the number of steps is known). ``ReduceLROnPlateau`` is stepped
    with ``monitor`` after each validation. :meth:`warmup_cosine` is the built-in warm-up + cosine.
    """

    def __init__(self, scheduler: Any, interval: str = "epoch", monitor: str = "val_loss") -> None:
        if interval not in ("epoch", "batch"):
            raise UsageError(f"scheduler interval {interval!r} is invalid; choose one of: epoch, batch")
        self.factory: SchedulerFactory | None = (
            scheduler if callable(scheduler) and not hasattr(scheduler, "step") else None)
        self.scheduler: Any = None if self.factory is not None else scheduler
        self.interval, self.monitor = interval, monitor
        self.pending_state: dict[str, Any] | None = None  # loaded before the factory has run

    @property
    def state_key(self) -> str:
        return self.generate_state_key(interval=self.interval, monitor=self.monitor)

    @classmethod
    def warmup_cosine(
        cls, warmup_steps: int | None = None, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0
    ) -> LearningRateScheduler:
        """Linear warm-up then cosine decay to ``min_lr_ratio`` x base lr, stepped per batch."""

        def factory(optimizer: torch.optim.Optimizer, trainer: TrainerLike) -> Any:
            total = max(1, trainer.total_steps)
            warm = warmup_steps if warmup_steps is not None else int(round(total * warmup_fraction))
            return warmup_cosine(optimizer, warm, total, min_lr_ratio)

        return cls(factory, interval="batch")

    @property
    def is_plateau(self) -> bool:
        return isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def on_fit_start(self, trainer: TrainerLike) -> None:
        if self.scheduler is None and self.factory is not None:
            self.scheduler = self.factory(trainer.optimizer, trainer)
        if self.pending_state is not None:
            self.scheduler.load_state_dict(self.pending_state)
            self.pending_state = None
        trainer.scheduler = self.scheduler

    def on_optimizer_step(self, trainer: TrainerLike, step: int) -> None:
        if self.interval == "batch" and not self.is_plateau:
            self.scheduler.step()

    def on_validation_end(self, trainer: TrainerLike, epoch: int, metrics: dict[str, float]) -> None:
        if self.is_plateau:
            self.scheduler.step(require_metric("ReduceLROnPlateau", self.monitor, metrics))

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, metrics: dict[str, float]) -> None:
        if self.interval == "epoch" and not self.is_plateau:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sched = state.get("scheduler")
        if sched is None:
            return
        if self.scheduler is None:
            self.pending_state = sched  # the factory runs at fit start
        else:
            self.scheduler.load_state_dict(sched)
