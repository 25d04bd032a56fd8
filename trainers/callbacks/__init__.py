"""Callbacks: small objects that watch a run and decide; only the Trainer acts.

Every hook does nothing by default, so a callback overrides only what it needs. A callback that
wants the run to end sets ``trainer.should_stop`` (and ``trainer.stop_reason``); it never breaks the
loop itself. Its state goes into the checkpoint under :attr:`Callback.state_key`, which includes the
callback's settings (monitor, mode, folder), so two instances of one class resume with their own state.

Hook order per epoch: ``on_epoch_start`` -> (``on_batch_start`` -> ``on_batch_end``)* ->
``on_validation_end`` (on validation epochs) -> ``on_epoch_end``.
"""

from trainers.callbacks.base import Callback, TrainerLike, check_mode, require_metric
from trainers.callbacks.early_stopping import EarlyStopping, early_stopping_decision, improves
from trainers.callbacks.lr_scheduler import LearningRateScheduler, SchedulerFactory
from trainers.callbacks.model_checkpoint import ModelCheckpoint, resumable_checkpoint

__all__ = [
    "Callback",
    "EarlyStopping",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "SchedulerFactory",
    "TrainerLike",
    "check_mode",
    "early_stopping_decision",
    "improves",
    "require_metric",
    "resumable_checkpoint",
]
