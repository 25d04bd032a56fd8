"""The real ``tritonkit train`` / ``tritonkit evaluate`` commands, good and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.trainers.test_data import make_folder
from toolkit.cli import main
from trainers.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run1"
    res = run("train", "--model", "smallcnn", "--data", "digits", "--epochs", "2", "--out", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    assert "saved" in res.stdout and "test_accuracy" in res.stdout
    return out


def test_train_writes_run_folder_and_deployable_model(trained):
    for name in ("config.json", "metrics.jsonl", "curves.png", "model.pt", "checkpoints/last.pt"):
        assert (trained / name).is_file(), name
    payload = load_checkpoint(trained / "model.pt")
    assert payload["architecture"]["name"] == "smallcnn" and payload["metrics"]["test_accuracy"] > 0.8


def test_evaluate_prints_json_with_metrics_cis_and_mcnemar_against_baseline(trained, tmp_path):
    res = run("evaluate", str(trained / "model.pt"), "--baseline", str(trained / "checkpoints/last.pt"),
              "--json", "--bootstrap", "50", "--plots", str(tmp_path / "plots"))
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["num_samples"] == 269 and 0.8 < report["top1_accuracy"] <= 1.0
    assert report["bootstrap"]["accuracy"]["low"] <= report["top1_accuracy"]
    assert "p_value" in report["baseline"]["mcnemar"] and len(report["confusion_matrix"]) == 10
    assert (tmp_path / "plots" / "reliability.png").is_file()


def test_evaluate_prints_a_table_by_default(trained):
    res = run("evaluate", str(trained / "model.pt"), "--data", "digits", "--bootstrap", "20")
    assert res.exit_code == 0, res.output
    assert "top-1 accuracy" in res.stdout and "macro-F1" in res.stdout and "precision" in res.stdout


def assert_one_line_error(res, pattern: str, code: int | None = None) -> None:
    assert res.exit_code != 0 and (code is None or res.exit_code == code), res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--model", "vgg99"], "unknown model 'vgg99'; choose one of: resnet_small, smallcnn"),
        (["--data", "mnist"], "unknown data set 'mnist'; choose one of: digits, imagefolder"),
        (["--data", "imagefolder"], "needs --data-dir"),
    ],
)
def test_train_fails_with_one_line_when_name_is_unknown(tmp_path, args, pattern):
    assert_one_line_error(run("train", "--out", str(tmp_path / "r"), "--epochs", "1", *args), pattern, 2)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("layout", "pattern"),
    [
        ("missing", "data folder not found"),
        ("empty", "data folder is empty"),
        ("empty_class", "class folder 'zebra' has no images"),
        ("all_corrupt", "all 2 image files are corrupt"),
    ],
)
def test_train_fails_with_one_line_when_data_folder_is_unusable(tmp_path, layout, pattern):
    data = tmp_path / "data"
    if layout == "empty":
        data.mkdir()
    elif layout == "empty_class":
        make_folder(data, per_class=3)
        (data / "zebra").mkdir()
    elif layout == "all_corrupt":
        for c in ("a", "b"):
            (data / c).mkdir(parents=True)
            (data / c / "x.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    res = run("train", "--data", "imagefolder", "--data-dir", str(data), "--out", str(tmp_path / "r"),
              "--epochs", "1", "--quiet")
    assert_one_line_error(res, pattern, 2)


def test_train_on_imagefolder_skips_corrupt_file_with_one_warning_line(tmp_path):
    data = make_folder(tmp_path / "data", per_class=8)
    (data / "dog" / "bad.png").write_bytes(b"\x89PNG broken")
    res = run("train", "--model", "resnet_small", "--data", "imagefolder", "--data-dir", str(data),
              "--image-size", "8", "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet")
    assert res.exit_code == 0, res.output
    assert "warning: " in res.stderr and "skipped 1 corrupt image(s) of 17" in res.stderr
    payload = load_checkpoint(tmp_path / "r" / "model.pt")
    assert tuple(payload["model_spec"]["inputs"][0]["shape"]) == (3, 8, 8)
    assert payload["labels"] == ["cat", "dog"] and payload["dataset"]["skipped_corrupt"] == 1


def test_train_fails_with_one_line_when_resume_has_no_checkpoint(tmp_path):
    res = run("train", "--out", str(tmp_path / "r"), "--epochs", "1", "--resume", "last", "--quiet")
    assert_one_line_error(res, "cannot resume: no checkpoint at", 1)


def test_train_stops_naming_the_step_when_loss_is_not_finite(tmp_path):
    res = run("train", "--out", str(tmp_path / "r"), "--epochs", "2", "--lr", "1e30", "--quiet")
    assert_one_line_error(res, "loss became nan at step", 1)


def test_evaluate_fails_with_one_line_when_checkpoint_is_truncated(trained, tmp_path):
    data = (trained / "model.pt").read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(data[: len(data) // 3])
    assert_one_line_error(run("evaluate", str(bad)), "truncated", 1)


def test_evaluate_fails_with_one_line_when_format_version_is_unknown(trained, tmp_path):
    payload = load_checkpoint(trained / "model.pt")
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "v99.pt")
    assert_one_line_error(run("evaluate", str(tmp_path / "v99.pt")), "format_version 99 is not supported", 1)


def test_evaluate_fails_with_one_line_when_data_does_not_fit_the_model(trained, tmp_path):
    data = make_folder(tmp_path / "data", per_class=8)
    res = run("evaluate", str(trained / "model.pt"), "--data", str(data))
    assert_one_line_error(res, "has 10 classes but the data has 2", 2)


def test_evaluate_fails_with_one_line_when_checkpoint_is_another_architecture(trained, tmp_path):
    payload = load_checkpoint(trained / "model.pt")
    payload["architecture"] = {"name": "resnet_small", "kwargs": {"num_classes": 10, "in_channels": 1}}
    torch.save(payload, tmp_path / "other.pt")
    assert_one_line_error(run("evaluate", str(tmp_path / "other.pt")), "saved from another architecture", 1)


def test_sigterm_saves_resumable_checkpoint_and_resume_finishes_the_run(tmp_path):
    """A real process gets SIGTERM mid-run, exits 130 with a how-to-resume line, then resumes."""
    out = tmp_path / "run"
    cmd = [TRITONKIT, "train", "--epochs", "40", "--out", str(out), "--quiet"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted by SIGTERM" in err and "--resume last" in err
    done = load_checkpoint(out / "checkpoints" / "last.pt")["epoch"]
    assert 1 <= done < 40
    res = run("train", "--epochs", str(done + 1), "--out", str(out), "--resume", "last", "--quiet")
    assert res.exit_code == 0, res.output
    assert load_checkpoint(out / "model.pt")["epoch"] == done + 1
