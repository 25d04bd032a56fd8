"""tritonkit's training half: models, data, the Trainer, its callbacks and loggers, evaluation.

The checkpoint (``trainers.checkpoint``) is the only thing deployment takes from here; trainers
never import toolkit. Names load on first use, so importing ``trainers.cli`` for ``tritonkit
--help`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "trainers.models": ("create_model", "register_model"),
    "trainers.data": ("create_dataloader",),
    "trainers.checkpoint": ("save_checkpoint", "load_checkpoint"),
    "trainers.trainer": ("create_trainer", "Trainer"),
    "trainers.callbacks": ("EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "Callback"),
    "trainers.loggers": ("default_loggers",),
    "trainers.evaluation.evaluator": ("Evaluator", "create_evaluator"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'trainers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = list(_MODULE_OF)
