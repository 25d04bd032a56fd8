"""Curves: ``curves.png`` (loss and accuracy per epoch), drawn with matplotlib when fit ends."""

from __future__ import annotations

import io
from typing import Any

from contract.fileio import atomic_write_bytes
from trainers.loggers.base import Logger, RunLike


def plot_series(ax: Any, history: list[dict[str, float]], keys: tuple[str, ...]) -> None:
    """Plot each of ``keys`` that the history has, against the epoch."""
    epochs = [m.get("epoch", i + 1) for i, m in enumerate(history)]
    for key in keys:
        pts = [(e, m[key]) for e, m in zip(epochs, history) if key in m]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=key)


class Curves(Logger):
    """Writes ``curves.png`` in the run folder at the end of fit (also after an error or interrupt)."""

    def __init__(self, filename: str = "curves.png") -> None:
        self.filename = filename

    def finish(self, run: RunLike) -> None:
        if not run.history:
            return
        import matplotlib  # heavy: only when a run has something to draw

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.5))
        ax_loss, ax_acc = fig.subplots(1, 2)
        plot_series(ax_loss, run.history, ("train_loss", "val_loss"))
        plot_series(ax_acc, run.history, ("val_accuracy",))
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
        atomic_write_bytes(run.run_dir / self.filename, buf.getvalue())
