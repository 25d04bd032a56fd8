"""Loggers: metrics.jsonl grows by one line per epoch, TensorBoard only where it imports, none at all."""

from __future__ import annotations

import importlib.util
import json

from tests.trainers.helpers import SendSignal, make, tiny_model, trainer_kwargs
from trainers.callbacks import Callback, ModelCheckpoint
from trainers.loggers import MetricsFile, default_loggers
from trainers.trainer import Trainer


class Snapshot(Callback):
    """Copies metrics.jsonl after every epoch, to see how the file changed."""

    def __init__(self):
        self.seen: list[bytes] = []

    def on_epoch_end(self, trainer, epoch, metrics):
        self.seen.append((trainer.run_dir / "metrics.jsonl").read_bytes())


def epochs_in(path) -> list[int]:
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def test_metrics_file_only_appends_one_line_per_epoch(tmp_path, digits, small_loaders):
    train, val = small_loaders
    snap = Snapshot()
    Trainer(tiny_model(), callbacks=[snap], **trainer_kwargs(tmp_path, digits["train"].classes)).fit(
        train, val, epochs=3)
    assert [s.count(b"\n") for s in snap.seen] == [1, 2, 3]
    assert all(later.startswith(earlier) for earlier, later in zip(snap.seen, snap.seen[1:]))


def test_metrics_file_holds_each_epoch_once_after_interrupt_and_resume(tmp_path, digits, small_loaders):
    train, val = small_loaders
    classes = digits["train"].classes
    make(tmp_path, classes, seed_model=0, extra=[SendSignal(at_step=5)]).fit(train, val, epochs=3)
    assert epochs_in(tmp_path / "metrics.jsonl") == [1]
    make(tmp_path, classes, seed_model=0).fit(train, val, epochs=3, resume="last")
    assert epochs_in(tmp_path / "metrics.jsonl") == [1, 2, 3]


def test_metrics_file_matches_the_history_of_an_older_checkpoint_when_resuming_from_it(
    tmp_path, digits, small_loaders
):
    train, val = small_loaders
    classes = digits["train"].classes
    first = Trainer(tiny_model(), callbacks=[ModelCheckpoint(save_top_k=3)], **trainer_kwargs(tmp_path, classes))
    result = first.fit(train, val, epochs=3)
    epoch1 = next(e["path"] for e in first.callbacks[0].best if e["epoch"] == 1)
    assert epochs_in(tmp_path / "metrics.jsonl") == [1, 2, 3] and result.epochs_completed == 3
    Trainer(tiny_model(), callbacks=[ModelCheckpoint(save_top_k=3)], **trainer_kwargs(tmp_path, classes)).fit(
        train, val, epochs=2, resume=epoch1)
    assert epochs_in(tmp_path / "metrics.jsonl") == [1, 2]


def test_tensorboard_logger_writes_events_or_says_it_is_missing(tmp_path, digits, small_loaders, capsys):
    train, val = small_loaders
    kw = trainer_kwargs(tmp_path, digits["train"].classes)
    kw["loggers"] = default_loggers(progress=True, curves=False, tensorboard=True)
    Trainer(tiny_model(), **kw).fit(train, val, epochs=1)
    if importlib.util.find_spec("tensorboard") is None:
        assert "tensorboard is not installed" in capsys.readouterr().err
        assert not (tmp_path / "tb").exists()
    else:
        assert any((tmp_path / "tb").iterdir())


def test_fit_writes_no_metrics_files_when_no_loggers_are_given(tmp_path, digits, small_loaders, capsys):
    train, val = small_loaders
    kw = trainer_kwargs(tmp_path, digits["train"].classes)
    kw["loggers"] = []
    result = Trainer(tiny_model(), **kw).fit(train, val, epochs=1)
    assert len(result.history) == 1 and (tmp_path / "config.json").is_file()
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "curves.png").exists()
    assert capsys.readouterr().err == ""


def test_default_loggers_are_metrics_file_curves_and_progress_bar():
    names = [type(lg).__name__ for lg in default_loggers()]
    assert names == ["MetricsFile", "Curves", "ProgressBar"]
    assert isinstance(Trainer(tiny_model()).loggers[0], MetricsFile)
