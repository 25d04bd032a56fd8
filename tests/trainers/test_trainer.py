"""The Trainer: run folder, validation cadence, subclassing, bf16, accumulation, NaN stop."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from contract.errors import CheckpointError, UsageError
from tests.trainers.helpers import tiny_model, trainer_kwargs
from trainers.callbacks import Callback, EarlyStopping, ModelCheckpoint
from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of
from trainers.trainer import NonFiniteLossError, Trainer, create_trainer


def test_fit_writes_config_metrics_checkpoints_and_curves_when_run_completes(
    tmp_path, digits, small_loaders
):
    train, val = small_loaders
    run = tmp_path / "runs" / "exp1"
    trainer = create_trainer(
        tiny_model(), callbacks=[ModelCheckpoint(save_top_k=1)],
        **trainer_kwargs(run, digits["train"].classes, curves=True),
    )
    result = trainer.fit(train, val, epochs=2)
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 2 and config["architecture"]["name"] == "smallcnn"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy", "samples_per_s", "lr"} <= set(lines[-1])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = load_checkpoint(result.best_checkpoint)
    assert payload["epoch"] >= 1 and payload["labels"] == digits["train"].classes
    assert model_spec_of(payload).input.shape == (1, 8, 8)
    rebuilt = model_from_checkpoint(result.last_checkpoint)
    x = torch.from_numpy(digits["test"].images[:4] / 16.0).float()
    trainer.model.eval()
    assert torch.equal(rebuilt(x), trainer.model(x))


def test_fit_validates_only_every_n_epochs_and_after_the_last(tmp_path, digits, small_loaders):
    train, val = small_loaders
    trainer = Trainer(tiny_model(), val_every_n_epochs=2, **trainer_kwargs(tmp_path, digits["train"].classes))
    result = trainer.fit(train, val, epochs=3)
    assert ["val_loss" in m for m in result.history] == [False, True, True]


class SmoothedTrainer(Trainer):
    """Overrides only train_step: label smoothing, and counts the calls."""

    calls = 0

    def train_step(self, batch):
        self.calls += 1
        x, y = self.to_device(batch)
        return F.cross_entropy(self.model(x), y, label_smoothing=0.1)


def test_subclass_overriding_only_train_step_still_gets_checkpoints_early_stopping_and_logging(
    tmp_path, digits, small_loaders
):
    train, val = small_loaders
    trainer = SmoothedTrainer(
        tiny_model(), callbacks=[EarlyStopping(monitor="val_accuracy", mode="max", patience=0),
                                 ModelCheckpoint()],
        **trainer_kwargs(tmp_path, digits["train"].classes),
    )
    result = trainer.fit(train, val, epochs=30)
    assert trainer.calls == result.epochs_completed * len(train)
    assert result.epochs_completed < 30 and "early stopping" in result.stop_reason
    assert (tmp_path / "checkpoints" / "last.pt").is_file() and result.best_checkpoint
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == result.epochs_completed


class DtypeRecorder(Trainer):
    def train_step(self, batch):
        x, y = self.to_device(batch)
        logits = self.model(x)
        self.seen_dtype = logits.dtype
        return F.cross_entropy(logits, y)


def test_bf16_precision_runs_forward_in_bfloat16_and_keeps_fp32_weights(tmp_path, digits, small_loaders):
    train, val = small_loaders
    trainer = DtypeRecorder(tiny_model(), precision="bf16", **trainer_kwargs(tmp_path, digits["train"].classes))
    result = trainer.fit(train, val, epochs=1)
    assert trainer.seen_dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert torch.isfinite(torch.tensor(result.history[-1]["val_loss"]))


def test_gradient_accumulation_takes_one_step_per_k_batches(tmp_path, digits, small_loaders):
    train, val = small_loaders  # 6 batches per epoch
    trainer = Trainer(tiny_model(), accumulate_grad_batches=4, **trainer_kwargs(tmp_path, digits["train"].classes))
    result = trainer.fit(train, val, epochs=2)
    assert result.steps == 4  # 2 per epoch: after batch 4 and after the last (6th)


def test_accumulated_small_batches_match_one_big_batch_when_model_has_no_batchnorm(tmp_path, digits):
    from tests.trainers.helpers import subset
    from trainers.data import create_dataloader

    def linear():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    split = subset(digits["train"], 64)
    results = []
    for bs, k in ((64, 1), (16, 4)):
        model = linear()
        loader = create_dataloader(split, {"batch_size": bs, "shuffle": False})
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), accumulate_grad_batches=k,
                          architecture={"name": "linear", "kwargs": {}},
                          **trainer_kwargs(tmp_path / str(k), digits["train"].classes))
        trainer.fit(loader, epochs=1)
        results.append(model[1].weight.detach().clone())
    assert torch.allclose(results[0], results[1], atol=1e-6)


class ExplodingTrainer(Trainer):
    def train_step(self, batch):
        loss = super().train_step(batch)
        return loss * float("nan") if self.step + 1 == 9 else loss


def test_fit_stops_naming_the_step_and_keeps_last_good_checkpoint_when_loss_is_nan(
    tmp_path, digits, small_loaders
):
    train, val = small_loaders  # 6 steps per epoch: step 9 is in epoch 2
    trainer = ExplodingTrainer(tiny_model(), callbacks=[ModelCheckpoint()],
                               **trainer_kwargs(tmp_path, digits["train"].classes))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 9 \(epoch 2, batch 3\)") as err:
        trainer.fit(train, val, epochs=3)
    assert "last good checkpoint kept" in str(err.value) and "\n" not in str(err.value)
    payload = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert payload["epoch"] == 1 and payload["step"] == 6
    assert all(torch.isfinite(v).all() for v in payload["model_state"].values() if v.is_floating_point())


def test_progress_bar_shows_loss_and_throughput_when_drawn(tmp_path, digits, small_loaders, capsys):
    from trainers.loggers.progress import ProgressBar

    train, val = small_loaders
    kw = trainer_kwargs(tmp_path, digits["train"].classes)
    kw["loggers"] = [*kw["loggers"], ProgressBar(bar=True)]  # as on a terminal
    Trainer(tiny_model(), **kw).fit(train, val, epochs=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "samples_s=" in err


def test_progress_prints_plain_lines_when_stderr_is_not_terminal(tmp_path, digits, small_loaders, capsys):
    train, val = small_loaders
    kw = trainer_kwargs(tmp_path, digits["train"].classes, progress=True)  # capsys: not a terminal
    Trainer(tiny_model(), **kw).fit(train, val, epochs=1)
    err = capsys.readouterr().err
    assert "epoch 1/1 train_loss" in err and "loss=" not in err and "\r" not in err


def test_trainer_rejects_unknown_precision():
    with pytest.raises(UsageError, match="fp32, bf16"):
        Trainer(tiny_model(), precision="fp8")


class Counter(Callback):
    def __init__(self):
        self.events: list[str] = []

    def on_fit_start(self, trainer):
        self.events.append("fit_start")

    def on_epoch_start(self, trainer, epoch):
        self.events.append("epoch_start")

    def on_validation_end(self, trainer, epoch, metrics):
        self.events.append("val_end")

    def on_epoch_end(self, trainer, epoch, metrics):
        self.events.append("epoch_end")

    def on_fit_end(self, trainer):
        self.events.append("fit_end")

    def on_exception(self, trainer, exc):
        self.events.append("exception")


def test_callback_hooks_run_in_documented_order(tmp_path, digits, small_loaders):
    train, val = small_loaders
    counter = Counter()
    Trainer(tiny_model(), callbacks=[counter], **trainer_kwargs(tmp_path, digits["train"].classes)).fit(
        train, val, epochs=2
    )
    assert counter.events == ["fit_start"] + ["epoch_start", "val_end", "epoch_end"] * 2 + ["fit_end"]


def test_load_checkpoint_refuses_pickled_code_even_when_torch_is_forced_to_unsafe_loads(
    tmp_path, monkeypatch
):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"kind": "tritonkit.checkpoint", "format_version": 1, "x": Evil()}, path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointError, match="refused: the file carries pickled code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_resumable_checkpoint_loads_with_weights_only_when_unsafe_loads_are_forced(
    tmp_path, digits, small_loaders, monkeypatch
):
    train, val = small_loaders
    result = Trainer(tiny_model(), callbacks=[ModelCheckpoint()],
                     **trainer_kwargs(tmp_path, digits["train"].classes)).fit(train, val, epochs=1)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    payload = load_checkpoint(result.last_checkpoint)
    assert isinstance(payload["rng_state"]["torch"], torch.Tensor)
    assert torch.load(result.last_checkpoint, weights_only=True)["step"] == 6


def test_fit_writes_self_describing_checkpoints_when_loaders_come_from_create_dataloader(tmp_path) -> None:
    from trainers import ModelCheckpoint, create_dataloader, create_model, create_trainer
    from trainers.checkpoint import load_checkpoint
    from trainers.recipes import digits_model_spec

    trainer = create_trainer(create_model("smallcnn"), run_dir=tmp_path / "run", num_threads=1,
                             callbacks=[ModelCheckpoint(save_dir="checkpoints")], loggers=[])
    result = trainer.fit(create_dataloader("digits", {"split": "train"}),
                         create_dataloader("digits", {"split": "val"}), epochs=1)
    payload = load_checkpoint(result.best_checkpoint)
    assert payload["model_spec"] == digits_model_spec([str(i) for i in range(10)]).to_dict()
    assert payload["labels"] == [str(i) for i in range(10)] and payload["dataset"]["name"] == "digits"
