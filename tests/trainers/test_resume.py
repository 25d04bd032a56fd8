"""Interrupt and resume: a real SIGINT/SIGTERM mid-epoch, then fit(resume=...) ends bitwise equal."""

from __future__ import annotations

import signal

import pytest

from contract.errors import CheckpointError
from tests.trainers.helpers import SendSignal, make, state_equal, tiny_model, trainer_kwargs
from trainers.callbacks import ModelCheckpoint
from trainers.models import create_model
from trainers.trainer import Trainer, TrainingError


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_resumed_run_ends_with_bitwise_equal_weights_when_interrupted_mid_epoch(
    tmp_path, digits, small_loaders, sig
):
    train, val = small_loaders  # 6 batches = 3 steps per epoch with accumulation 2
    classes = digits["train"].classes
    full = make(tmp_path / "full", classes, seed_model=0)
    ref = full.fit(train, val, epochs=3)

    first = make(tmp_path / "cut", classes, seed_model=0, extra=[SendSignal(at_step=5, sig=sig)])
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))  # SIG_IGN in a background job
    cut = first.fit(train, val, epochs=3)
    assert cut.interrupted == signal.Signals(sig).name
    assert "resume with" in cut.stop_reason and cut.steps == 5 and cut.epochs_completed == 1
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored

    again = make(tmp_path / "cut", classes, seed_model=123)  # different init: all must come from the file
    res = again.fit(train, val, epochs=3, resume="last")
    assert res.interrupted is None and res.steps == ref.steps == 9
    assert state_equal(again.model.state_dict(), full.model.state_dict())
    assert [m["train_loss"] for m in res.history] == [m["train_loss"] for m in ref.history]
    assert again.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]


def test_fit_raises_clear_error_when_resume_last_has_no_checkpoint(tmp_path, digits, small_loaders):
    train, val = small_loaders
    trainer = Trainer(tiny_model(), **trainer_kwargs(tmp_path, digits["train"].classes))
    with pytest.raises(TrainingError, match="cannot resume: no checkpoint at .*last.pt"):
        trainer.fit(train, val, epochs=1, resume="last")


def test_fit_refuses_resume_when_checkpoint_is_another_architecture(tmp_path, digits, small_loaders):
    train, val = small_loaders
    classes = digits["train"].classes
    Trainer(tiny_model(), callbacks=[ModelCheckpoint()], **trainer_kwargs(tmp_path, classes)).fit(
        train, val, epochs=1
    )
    other = create_model("smallcnn", num_classes=10, in_channels=1, width=8)
    with pytest.raises(CheckpointError, match="architecture .* differs"):
        Trainer(other, callbacks=[ModelCheckpoint()], **trainer_kwargs(tmp_path, classes)).fit(
            train, val, epochs=2, resume="last"
        )


def test_fit_refuses_resume_when_checkpoint_is_truncated(tmp_path, digits, small_loaders):
    train, val = small_loaders
    classes = digits["train"].classes
    res = Trainer(tiny_model(), callbacks=[ModelCheckpoint()], **trainer_kwargs(tmp_path, classes)).fit(
        train, val, epochs=1
    )
    data = open(res.last_checkpoint, "rb").read()
    with open(res.last_checkpoint, "wb") as fh:
        fh.write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|damaged"):
        Trainer(tiny_model(), **trainer_kwargs(tmp_path, classes)).fit(train, val, epochs=2, resume="last")
