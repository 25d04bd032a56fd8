"""Loggers: where a run's metrics and messages go (files, plots, TensorBoard, the progress bar).

``default_loggers()`` is what ``create_trainer``, ``tritonkit train`` and ``make repo`` use:
``metrics.jsonl`` and ``curves.png`` in the run folder and a progress bar on stderr.
"""

from __future__ import annotations

from trainers.loggers.base import Logger, RunLike
from trainers.loggers.curves import Curves
from trainers.loggers.metrics_file import MetricsFile
from trainers.loggers.progress import ProgressBar
from trainers.loggers.tensorboard import TensorBoard


def default_loggers(*, progress: bool = True, curves: bool = True, tensorboard: bool = False) -> list[Logger]:
    """The standard set: MetricsFile always; Curves, ProgressBar and TensorBoard as asked."""
    loggers: list[Logger] = [MetricsFile()]
    if curves:
        loggers.append(Curves())
    if tensorboard:
        loggers.append(TensorBoard())
    if progress:
        loggers.append(ProgressBar())
    return loggers


__all__ = ["Curves", "Logger", "MetricsFile", "ProgressBar", "RunLike", "TensorBoard", "default_loggers"]
