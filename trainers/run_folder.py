"""A run folder is never overwritten silently: a new run goes into an empty or new folder, an old
one is continued with ``--resume`` or replaced whole with ``--overwrite``. Imports no torch, so
the CLI refuses before any heavy import and before anything is written.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from contract.errors import UsageError

# What a training run writes; a folder holding none of these is not a run and is never removed.
RUN_MARKERS = ("model.pt", "metrics.jsonl", "config.json", "checkpoints")


def check_run_folder(out: str | Path, *, resume: str | None, overwrite: bool) -> bool:
    """Refuse to mix a new run into an existing one; True when ``out`` holds a run to remove first.

    Raises:
        UsageError: ``out`` is a file; it holds a run and neither ``resume`` nor ``overwrite`` is given;
            ``overwrite`` of a non-empty folder that holds no run; ``resume`` together with ``overwrite``.
    """
    path = Path(out)
    if resume and overwrite:
        raise UsageError("--resume continues a run and --overwrite replaces it; pass only one of them")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} is a file, not a run folder; choose another --out")
    if resume or not path.is_dir() or not any(path.iterdir()):
        return False
    markers = [m for m in RUN_MARKERS if (path / m).exists()]
    if not markers:
        raise UsageError(f"--out {out} is not empty and holds no training run; choose an empty or new folder "
                         "(--overwrite removes only run folders)")
    if not overwrite:
        raise UsageError(f"--out {out} already holds a run ({', '.join(markers)}); continue it with --resume last, "
                         "replace it whole with --overwrite, or choose another --out")
    return True


def remove_run(out: str | Path) -> None:
    """Remove an old run whole (after :func:`check_run_folder` said it is one), so nothing stale stays."""
    shutil.rmtree(out)


def check_learning_rate(lr: float) -> None:
    """A learning rate must be a positive finite number (NaN, 0 or below would train nothing or crash)."""
    if not math.isfinite(lr) or lr <= 0:
        raise UsageError(f"--lr {lr} must be a positive finite number, e.g. 3e-3")
