"""Callback state on resume: keys carry the settings, so several callbacks of one class keep their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contract.errors import UsageError
from tests.trainers.helpers import SendSignal, make, tiny_model, trainer_kwargs
from trainers.callbacks import EarlyStopping, ModelCheckpoint
from trainers.checkpoint import load_checkpoint, save_checkpoint
from trainers.trainer import Trainer


def kept(cb: ModelCheckpoint, run: Path) -> list[tuple[str, float, int]]:
    """A ModelCheckpoint's best list, with paths relative to the run folder (runs differ in folder)."""
    return [(str(Path(e["path"]).relative_to(run)), e["score"], e["epoch"]) for e in cb.best]


def by_accuracy() -> ModelCheckpoint:
    return ModelCheckpoint(save_dir="by_acc", monitor="val_accuracy", mode="max", save_top_k=1, save_last=False)


def test_two_model_checkpoints_resume_with_their_own_states_when_interrupted(tmp_path, digits, small_loaders):
    train, val = small_loaders
    classes = digits["train"].classes
    full = make(tmp_path / "full", classes, seed_model=0, extra=[by_accuracy()])
    full.fit(train, val, epochs=3)

    cut = make(tmp_path / "cut", classes, seed_model=0, extra=[by_accuracy(), SendSignal(at_step=5)])
    assert cut.fit(train, val, epochs=3).interrupted == "SIGINT"
    saved = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["callbacks_state"]
    assert len([k for k in saved if k.startswith("ModelCheckpoint")]) == 2

    again = make(tmp_path / "cut", classes, seed_model=123, extra=[by_accuracy()])
    by_loss, by_acc = (cb for cb in again.callbacks if isinstance(cb, ModelCheckpoint))
    again.fit(train, val, epochs=3, resume="last")
    ref_loss, ref_acc = (cb for cb in full.callbacks if isinstance(cb, ModelCheckpoint))
    assert kept(by_loss, tmp_path / "cut") == kept(ref_loss, tmp_path / "full")
    assert kept(by_acc, tmp_path / "cut") == kept(ref_acc, tmp_path / "full")
    assert all(Path(e["path"]).parent.name == "by_acc" for e in by_acc.best)
    assert all(Path(e["path"]).is_file() for e in by_loss.best + by_acc.best)


def test_state_key_differs_when_monitor_mode_or_folder_differ():
    keys = {ModelCheckpoint().state_key, ModelCheckpoint(monitor="val_accuracy", mode="max").state_key,
            ModelCheckpoint(save_dir="other").state_key, EarlyStopping().state_key,
            EarlyStopping(monitor="val_accuracy", mode="max").state_key}
    assert len(keys) == 5


def test_fit_refuses_two_callbacks_with_one_state_key(tmp_path, digits, small_loaders):
    train, val = small_loaders
    trainer = Trainer(tiny_model(), callbacks=[EarlyStopping(patience=3), EarlyStopping(patience=5)],
                      **trainer_kwargs(tmp_path, digits["train"].classes))
    with pytest.raises(UsageError, match="share the state key") as err:
        trainer.fit(train, val, epochs=1)
    assert "\n" not in str(err.value)


def test_fit_refuses_in_one_line_when_two_checkpoint_folders_would_both_hold_last(tmp_path, digits, small_loaders):
    train, val = small_loaders
    trainer = Trainer(tiny_model(), callbacks=[ModelCheckpoint(), ModelCheckpoint(save_dir="b", monitor="val_accuracy",
                                                                                  mode="max")],
                      **trainer_kwargs(tmp_path, digits["train"].classes))
    with pytest.raises(UsageError, match=r"different folders \(checkpoints, b\); set save_last=False") as err:
        trainer.fit(train, val, epochs=1)
    assert "\n" not in str(err.value) and not (tmp_path / "metrics.jsonl").exists()


def test_checkpoint_dir_is_the_folder_of_the_model_checkpoint_that_saves_last(tmp_path, digits):
    trainer = Trainer(tiny_model(), callbacks=[by_accuracy(), ModelCheckpoint(save_dir="main")],
                      **trainer_kwargs(tmp_path, digits["train"].classes))
    assert trainer.checkpoint_dir == tmp_path / "main"


def test_resume_reads_state_saved_under_the_bare_class_name_by_older_checkpoints(tmp_path, digits, small_loaders):
    train, val = small_loaders
    classes = digits["train"].classes
    first = Trainer(tiny_model(), callbacks=[ModelCheckpoint(), EarlyStopping(patience=50)],
                    **trainer_kwargs(tmp_path, classes))
    first.fit(train, val, epochs=2)
    path = tmp_path / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    payload["callbacks_state"] = {type(cb).__name__: cb.state_dict() for cb in first.callbacks}
    save_checkpoint(payload, path)
    early = EarlyStopping(patience=50)
    Trainer(tiny_model(), callbacks=[ModelCheckpoint(), early], **trainer_kwargs(tmp_path, classes)).fit(
        train, val, epochs=3, resume="last")
    assert early.history[:2] == first.callbacks[1].history and len(early.history) == 3


def test_callbacks_import_without_the_trainer_module():
    code = "import sys, trainers.callbacks; assert 'trainers.trainer' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
