"""The logger base class: what a run reports (metrics, messages, batch progress) and where.

The Trainer only calls these hooks; files, plots, TensorBoard and the progress bar are loggers
(as Lightning's loggers and progress-bar callback), chosen by the ``loggers`` list of the Trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class RunLike(Protocol):
    """What a logger reads from the trainer; :class:`trainers.trainer.Trainer` has all of it."""

    run_dir: Path
    history: list[dict[str, float]]
    max_epochs: int
    batch_in_epoch: int

    def say(self, line: str) -> None: ...


class Logger:
    """Base class: every hook is a no-op. Hooks run in the order of the trainer's ``loggers``."""

    def start(self, run: RunLike) -> None:
        """Fit starts (after any resume: ``run.history`` holds the epochs already done)."""

    def log_metrics(self, run: RunLike, metrics: dict[str, float]) -> None:
        """One epoch finished with ``metrics`` (already appended to ``run.history``)."""

    def log_message(self, run: RunLike, line: str) -> None:
        """A one-line message for the user (resumed, interrupted, an optional package missing)."""

    def train_epoch_start(self, run: RunLike, epoch: int, total_batches: int) -> None:
        """Training batches of ``epoch`` (0-based) begin; ``run.batch_in_epoch`` are already done."""

    def train_batch_end(self, run: RunLike, loss: float, samples_per_s: float) -> None:
        """One training batch finished."""

    def train_epoch_end(self, run: RunLike) -> None:
        """The training batches of the epoch are done (or interrupted)."""

    def finish(self, run: RunLike) -> None:
        """Fit ends, however it ends (runs in ``finally``): flush and close."""
