"""ModelCheckpoint: which checkpoints to keep (best k by a metric, and a resumable last.pt)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contract.errors import UsageError
from contract.fileio import atomic_write_bytes
from trainers.callbacks.base import Callback, TrainerLike, check_mode, require_metric


class ModelCheckpoint(Callback):
    """Keep the best ``save_top_k`` checkpoints by ``monitor`` and a resumable ``last.pt``.

    The callback decides which files to keep and asks the trainer to write them (atomically, at the
    end of the epoch, after every callback has updated its state). A new file is written before any
    file it replaces is removed, and ``index.json`` in ``save_dir`` records why each kept file is
    there. Its state key includes monitor, mode and folder, so several instances resume side by side.
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
        self.monitor, self.mode = monitor, check_mode(mode)
        self.save_top_k = int(save_top_k) if save_best else 0
        self.save_last = save_last
        self.best: list[dict[str, Any]] = []  # {"path", "score", "epoch", "reason"}, best first
        self.last_path: str | None = None

    @property
    def state_key(self) -> str:
        return self.generate_state_key(monitor=self.monitor, mode=self.mode, dir=str(self.save_dir))

    def directory(self, trainer: TrainerLike) -> Path:
        """The folder this callback writes to (``save_dir``, relative to the run folder unless absolute)."""
        return self.save_dir if self.save_dir.is_absolute() else trainer.run_dir / self.save_dir

    @property
    def best_path(self) -> str | None:
        return self.best[0]["path"] if self.best else None

    def on_validation_end(self, trainer: TrainerLike, epoch: int, metrics: dict[str, float]) -> None:
        if self.save_top_k == 0:
            return
        score = require_metric("ModelCheckpoint", self.monitor, metrics)
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
            self.write_index(trainer)
            for e in evicted:
                if e["path"] != str(path):
                    Path(e["path"]).unlink(missing_ok=True)

        trainer.request_checkpoint(path, then=after_write)

    def on_epoch_end(self, trainer: TrainerLike, epoch: int, metrics: dict[str, float]) -> None:
        if self.save_last:
            path = self.directory(trainer) / "last.pt"

            def after_write() -> None:
                self.last_path = str(path)
                self.write_index(trainer)

            trainer.request_checkpoint(path, then=after_write)

    def write_index(self, trainer: TrainerLike) -> None:
        """Rewrite ``index.json``: every kept file and why it is kept."""
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


def resumable_checkpoint(callbacks: Sequence[Callback]) -> ModelCheckpoint | None:
    """The ModelCheckpoint whose folder holds the run's ``last.pt``, or None when there is none.

    With several, the one that saves ``last.pt`` (``save_last=True``) decides; several of those in
    different folders are ambiguous for ``resume="last"``, so that is refused in one line.
    """
    found = [cb for cb in callbacks if isinstance(cb, ModelCheckpoint)]
    candidates = [cb for cb in found if cb.save_last] or found
    if len({str(cb.save_dir) for cb in candidates}) > 1:
        dirs = ", ".join(str(cb.save_dir) for cb in candidates)
        raise UsageError(
            f"{len(candidates)} ModelCheckpoint callbacks would save last.pt in different folders ({dirs}); "
            "set save_last=False on all but one, so resume='last' knows where to look"
        )
    return candidates[0] if candidates else None
