"""MetricsFile: ``metrics.jsonl`` in the run folder, one JSON object per epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from contract.fileio import atomic_write_bytes
from trainers.loggers.base import Logger, RunLike


def metrics_line(metrics: dict[str, float]) -> str:
    """One epoch as one JSON line (keys sorted, so files diff cleanly)."""
    return json.dumps(metrics, sort_keys=True) + "\n"


class MetricsFile(Logger):
    """Appends one line per epoch to ``metrics.jsonl``, fsynced, so a crash never loses earlier lines.

    At fit start the file is rewritten atomically from the run's history, so after a resume from an
    earlier checkpoint it holds exactly the epochs that checkpoint had done; then lines are appended.
    """

    def __init__(self, filename: str = "metrics.jsonl") -> None:
        self.filename = filename

    def path(self, run: RunLike) -> Path:
        return run.run_dir / self.filename

    def start(self, run: RunLike) -> None:
        path = self.path(run)
        if run.history or path.exists():
            atomic_write_bytes(path, "".join(metrics_line(m) for m in run.history).encode())

    def log_metrics(self, run: RunLike, metrics: dict[str, float]) -> None:
        with open(self.path(run), "a", encoding="utf-8") as fh:
            fh.write(metrics_line(run.history[-1] if run.history else metrics))
            fh.flush()
            os.fsync(fh.fileno())
