"""tritonkit's training half: models, data, the Trainer and its callbacks, evaluation.

The checkpoint (``trainers.checkpoint``) is the only thing deployment takes from here.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "create_model": "trainers.models",
    "register_model": "trainers.models",
    "create_dataloader": "trainers.data",
    "save_checkpoint": "trainers.checkpoint",
    "load_checkpoint": "trainers.checkpoint",
    "create_trainer": "trainers.trainer",
    "Trainer": "trainers.trainer",
    "EarlyStopping": "trainers.callbacks",
    "ModelCheckpoint": "trainers.callbacks",
    "LearningRateScheduler": "trainers.callbacks",
    "Callback": "trainers.callbacks",
    "default_loggers": "trainers.loggers",
    "Evaluator": "trainers.evaluation.evaluator",
    "create_evaluator": "trainers.evaluation.evaluator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")


__all__ = list(_LAZY)
