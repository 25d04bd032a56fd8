"""Early stopping: a pure decision over the monitored history, and the callback that applies it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from contract.errors import UsageError
from trainers.callbacks.base import Callback, TrainerLike, check_mode, require_metric


def improves(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``."""
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
    check_mode(mode)
    if not history:
        return False, ""
    if not math.isfinite(history[-1]):
        return True, f"monitored value is {history[-1]} at evaluation {len(history)}"
    best: float | None = None
    best_at = 0
    for i, value in enumerate(history):
        if improves(value, best, mode, min_delta):
            best, best_at = value, i
    waited = len(history) - 1 - best_at
    if waited >= max(patience, 1):
        return True, (
            f"no improvement for {waited} evaluations (best {best:.6g} at evaluation {best_at + 1}, "
            f"patience {patience}, min_delta {min_delta})"
        )
    return False, ""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` validations (sets ``should_stop``)."""

    def __init__(
        self, monitor: str = "val_loss", mode: str = "min", patience: int = 10, min_delta: float = 0.0
    ) -> None:
        if patience < 0:
            raise UsageError(f"EarlyStopping patience {patience} is negative; use 0 or more")
        self.monitor, self.mode = monitor, check_mode(mode)
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.history: list[float] = []

    @property
    def state_key(self) -> str:
        return self.generate_state_key(monitor=self.monitor, mode=self.mode)

    def on_validation_end(self, trainer: TrainerLike, epoch: int, metrics: dict[str, float]) -> None:
        self.history.append(require_metric("EarlyStopping", self.monitor, metrics))
        stop, reason = early_stopping_decision(self.history, self.mode, self.patience, self.min_delta)
        if stop:
            trainer.should_stop = True
            trainer.stop_reason = f"early stopping on {self.monitor}: {reason}"

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [float(v) for v in state.get("history", [])]
