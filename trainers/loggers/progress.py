"""ProgressBar: a tqdm bar per epoch (loss, samples/s) and the run's one-line messages, on stderr.

The bar is drawn only on a terminal; elsewhere (CI logs, pipes, files) only the plain lines are
written (one per epoch and message), so a log stays readable.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from trainers.loggers.base import Logger, RunLike


def epoch_line(run: RunLike, metrics: dict[str, float]) -> str:
    """``epoch 3/15 train_loss 0.1234 ...``: the line printed after each epoch."""
    shown = " ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
        if k not in ("epoch", "lr")
    )
    return f"epoch {int(metrics.get('epoch', 0))}/{run.max_epochs} {shown}"


class ProgressBar(Logger):
    """The bar refreshes every 10 batches and at the end; messages print above it (``tqdm.write``)."""

    def __init__(self, bar: bool | None = None) -> None:
        self.bar: Any = None
        self.draw = sys.stderr.isatty() if bar is None else bar  # None: only on a terminal

    def log_message(self, run: RunLike, line: str) -> None:
        if self.draw:
            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def log_metrics(self, run: RunLike, metrics: dict[str, float]) -> None:
        self.log_message(run, epoch_line(run, metrics))

    def train_epoch_start(self, run: RunLike, epoch: int, total_batches: int) -> None:
        if not self.draw:
            return
        self.bar = tqdm(total=total_batches, initial=run.batch_in_epoch, desc=f"epoch {epoch + 1}/{run.max_epochs}",
                        leave=False, mininterval=0.5, unit="batch", file=sys.stderr)

    def train_batch_end(self, run: RunLike, loss: float, samples_per_s: float) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if self.bar.n % 10 == 0 or self.bar.n == self.bar.total:
            self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{samples_per_s:.0f}",
                                 refresh=self.bar.n == self.bar.total)

    def train_epoch_end(self, run: RunLike) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self, run: RunLike) -> None:
        self.train_epoch_end(run)
