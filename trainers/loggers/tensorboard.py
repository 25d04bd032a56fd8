"""TensorBoard: event files under ``<run>/tb`` where ``torch.utils.tensorboard`` imports."""

from __future__ import annotations

from typing import Any

from trainers.loggers.base import Logger, RunLike


class TensorBoard(Logger):
    """Writes every epoch metric as a scalar; says once and does nothing when tensorboard is missing."""

    def __init__(self, subdir: str = "tb") -> None:
        self.subdir = subdir
        self.writer: Any = None

    def start(self, run: RunLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            run.say("tensorboard is not installed; skipping event files (pip install tensorboard)")
            return
        self.writer = SummaryWriter(log_dir=str(run.run_dir / self.subdir))

    def log_metrics(self, run: RunLike, metrics: dict[str, float]) -> None:
        if self.writer is None:
            return
        epoch = int(metrics.get("epoch", len(run.history)))
        for key, value in metrics.items():
            if key != "epoch":
                self.writer.add_scalar(key, float(value), epoch)

    def finish(self, run: RunLike) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
