"""Callbacks: pure early-stopping decisions as tables, best-k checkpoints, LR schedules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from contract.errors import UsageError
from tests.trainers.helpers import tiny_model, trainer_kwargs
from trainers.callbacks import (
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    early_stopping_decision,
)
from trainers.schedulers import WarmupCosine
from trainers.trainer import Trainer


@pytest.mark.parametrize(
    ("history", "mode", "patience", "min_delta", "stop"),
    [
        ([], "min", 2, 0.0, False),
        ([1.0], "min", 0, 0.0, False),
        ([1.0, 1.0], "min", 0, 0.0, True),
        ([1.0, 1.0], "min", 1, 0.0, True),
        ([1.0, 0.9, 0.8], "min", 1, 0.0, False),
        ([1.0, 0.9, 0.95], "min", 2, 0.0, False),
        ([1.0, 0.9, 0.95, 0.91], "min", 2, 0.0, True),
        ([1.0, 0.95, 0.92], "min", 2, 0.1, True),  # improvements smaller than min_delta do not count
        ([0.5, 0.6, 0.7], "max", 1, 0.0, False),
        ([0.5, 0.6, 0.6, 0.6], "max", 2, 0.0, True),
        ([0.5, float("nan")], "min", 5, 0.0, True),
        ([0.5, float("inf")], "min", 5, 0.0, True),
    ],
)
def test_early_stopping_decision_matches_table(history, mode, patience, min_delta, stop):
    decided, reason = early_stopping_decision(history, mode, patience, min_delta)
    assert decided is stop
    assert bool(reason) is stop


def test_early_stopping_decision_rejects_unknown_mode():
    with pytest.raises(UsageError, match="min, max"):
        early_stopping_decision([1.0], mode="lowest")


class ScriptedTrainer(Trainer):
    """Validation returns scripted values, so stop epochs and kept files are known in advance."""

    def __init__(self, *args, script: list[float], key: str = "val_loss", **kwargs):
        super().__init__(*args, **kwargs)
        self.script, self.key = script, key

    def validate_epoch(self, epoch: int) -> dict[str, float]:
        return {self.key: self.script[epoch]}


@pytest.mark.parametrize(
    ("losses", "patience", "expected_epochs"),
    [
        ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], 2, 6),
        ([1.0, 0.9, 0.95, 0.96, 0.97, 0.5], 2, 4),
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0, 2),
        ([1.0, 2.0, 0.5, 0.6, 0.7, 0.8], 2, 5),
    ],
)
def test_fit_stops_at_expected_epoch_when_early_stopping_patience_runs_out(
    tmp_path, digits, small_loaders, losses, patience, expected_epochs
):
    train, val = small_loaders
    model = tiny_model()
    trainer = ScriptedTrainer(
        model, callbacks=[EarlyStopping(patience=patience)], script=losses,
        **trainer_kwargs(tmp_path / "run", digits["train"].classes),
    )
    result = trainer.fit(train, val, epochs=len(losses))
    assert result.epochs_completed == expected_epochs
    if expected_epochs < len(losses):
        assert "early stopping on val_loss" in result.stop_reason


class RecordingTrainer(ScriptedTrainer):
    """Records which checkpoint files existed each time a checkpoint was written."""

    def save_checkpoint(self, path):
        out = super().save_checkpoint(path)
        self.events.append((Path(path).name, sorted(p.name for p in Path(path).parent.glob("*.pt"))))
        return out


def test_model_checkpoint_keeps_best_k_and_last_and_writes_new_before_removing_old(
    tmp_path, digits, small_loaders
):
    train, val = small_loaders
    losses = [0.9, 0.5, 0.7, 0.3, 0.8]
    trainer = RecordingTrainer(
        tiny_model(), callbacks=[ModelCheckpoint(save_top_k=2)], script=losses,
        **trainer_kwargs(tmp_path / "run", digits["train"].classes),
    )
    trainer.events = []
    trainer.fit(train, val, epochs=len(losses))
    ckdir = tmp_path / "run" / "checkpoints"
    kept = sorted(p.name for p in ckdir.glob("*.pt"))
    assert kept == ["best-epoch=002-val_loss=0.5000.pt", "best-epoch=004-val_loss=0.3000.pt", "last.pt"]
    # epoch 3 (0.7) pushed out epoch 1 (0.9): when the epoch-3 file was written, epoch 1 still existed
    name, existing = next(e for e in trainer.events if e[0].startswith("best-epoch=003"))
    assert "best-epoch=001-val_loss=0.9000.pt" in existing
    index = json.loads((ckdir / "index.json").read_text())
    reasons = {Path(e["path"]).name: e["reason"] for e in index["kept"]}
    assert reasons["best-epoch=004-val_loss=0.3000.pt"].startswith("rank 1 of top 2")
    assert reasons["last.pt"].startswith("last")


def test_model_checkpoint_keeps_highest_when_mode_is_max(tmp_path, digits, small_loaders):
    train, val = small_loaders
    trainer = ScriptedTrainer(
        tiny_model(), callbacks=[ModelCheckpoint(monitor="val_accuracy", mode="max", save_last=False)],
        script=[0.5, 0.9, 0.7], key="val_accuracy",
        **trainer_kwargs(tmp_path / "run", digits["train"].classes),
    )
    result = trainer.fit(train, val, epochs=3)
    assert Path(result.best_checkpoint).name == "best-epoch=002-val_accuracy=0.9000.pt"
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").glob("*.pt")) == [
        "best-epoch=002-val_accuracy=0.9000.pt"
    ]


def fit_sgd_with(tmp_path, digits, loaders, make_scheduler, trainer_class=Trainer, **extra):
    """Fit 3 epochs with SGD(lr=0.1) and ``LearningRateScheduler(make_scheduler(opt))``; returns (opt, result)."""
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = trainer_class(model, opt, callbacks=[LearningRateScheduler(make_scheduler(opt))],
                            **extra, **trainer_kwargs(tmp_path / "run", digits["train"].classes))
    return opt, trainer.fit(*loaders, epochs=3)


def test_step_lr_scheduler_lowers_lr_per_epoch_when_interval_is_epoch(tmp_path, digits, small_loaders):
    opt, result = fit_sgd_with(tmp_path, digits, small_loaders,
                               lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5))
    assert [round(m["lr"], 6) for m in result.history] == [0.1, 0.05, 0.025]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0125)


def test_reduce_on_plateau_cuts_lr_when_monitored_loss_stops_improving(tmp_path, digits, small_loaders):
    opt, _ = fit_sgd_with(tmp_path, digits, small_loaders,
                          lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.1),
                          trainer_class=ScriptedTrainer, script=[1.0, 1.0, 1.0])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 1 / 5), (3, 4 / 5), (4, 1.0), (14, 0.5), (24, 0.0)],
)
def test_warmup_cosine_multiplier_matches_table(step, expected):
    assert WarmupCosine(warmup=4, total=24)(step) == pytest.approx(expected, abs=1e-9)


def test_warmup_cosine_builtin_reaches_min_lr_at_last_step(tmp_path, digits, small_loaders):
    train, val = small_loaders
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    trainer = Trainer(model, opt, callbacks=[LearningRateScheduler.warmup_cosine(warmup_steps=3,
                                                                                  min_lr_ratio=0.1)],
                      **trainer_kwargs(tmp_path / "run", digits["train"].classes))
    result = trainer.fit(train, val, epochs=2)
    assert result.steps == 12
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)
    assert not math.isclose(result.history[0]["lr"], 0.01)


def test_scheduler_interval_rejects_unknown_value():
    with pytest.raises(UsageError, match="epoch, batch"):
        LearningRateScheduler(lambda opt, tr: None, interval="step")
