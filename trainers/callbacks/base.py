"""The callback base class and the small view of the trainer that callbacks may use.

Callbacks import nothing from ``trainers.trainer``: they see the run through :class:`TrainerLike`
(a Protocol the Trainer satisfies), so the two modules never import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from contract.errors import UsageError


class TrainerLike(Protocol):
    """What a callback reads or sets on the trainer; :class:`trainers.trainer.Trainer` has all of it."""

    run_dir: Path
    optimizer: torch.optim.Optimizer
    scheduler: Any
    epoch: int
    step: int
    total_steps: int
    should_stop: bool
    stop_reason: str

    def request_checkpoint(self, path: str | Path, then: Callable[[], None] | None = None) -> None: ...


class Callback:
    """Base class: every hook is a no-op, so a callback overrides only what it needs."""

    @property
    def state_key(self) -> str:
        """Key of this callback's state in the checkpoint's ``callbacks_state``.

        The class name, plus the settings that tell two instances apart (see
        :meth:`generate_state_key`), so two callbacks of one class never overwrite each other's state.
        """
        return type(self).__qualname__

    def generate_state_key(self, **settings: Any) -> str:
        """``ClassName{settings}``: the state key of a callback configured by ``settings`` (as Lightning)."""
        return f"{type(self).__qualname__}{settings!r}"

    def on_fit_start(self, trainer: TrainerLike) -> None: ...
    def on_fit_end(self, trainer: TrainerLike) -> None: ...
    def on_epoch_start(self, trainer: TrainerLike, epoch: int) -> None: ...
    def on_epoch_end(self, trainer: TrainerLike, epoch: int, metrics: dict[str, float]) -> None: ...
    def on_batch_start(self, trainer: TrainerLike, batch_idx: int) -> None: ...
    def on_batch_end(self, trainer: TrainerLike, batch_idx: int, loss: float) -> None: ...
    def on_optimizer_step(self, trainer: TrainerLike, step: int) -> None: ...
    def on_validation_end(self, trainer: TrainerLike, epoch: int, metrics: dict[str, float]) -> None: ...
    def on_save_checkpoint(self, trainer: TrainerLike, payload: dict[str, Any]) -> None: ...
    def on_load_checkpoint(self, trainer: TrainerLike, payload: dict[str, Any]) -> None: ...
    def on_exception(self, trainer: TrainerLike, exc: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def check_mode(mode: str) -> str:
    """``mode`` if it is "min" or "max"; otherwise a one-line error listing both."""
    if mode not in ("min", "max"):
        raise UsageError(f"mode {mode!r} is invalid; choose one of: min, max")
    return mode


def require_metric(owner: str, monitor: str, metrics: dict[str, float]) -> float:
    """The monitored value, or a one-line error naming the metrics validation did produce."""
    if monitor not in metrics:
        raise UsageError(
            f"{owner} monitors {monitor!r} but validation gave only "
            f"{', '.join(sorted(metrics))}; set monitor to one of them"
        )
    return float(metrics[monitor])
