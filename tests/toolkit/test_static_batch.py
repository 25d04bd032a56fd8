"""Fixed-batch models (``export --static --batch N``) through every stage, with the real CLI (issue 15, item 1)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.profiling.conftest import one_error_line, tk

BATCH = 4  # the digits test split (269 images) is not a multiple: the last chunk is padded


def _batch_dims(path: Path) -> list[int]:
    g = onnx.load(str(path)).graph
    return [v.type.tensor_type.shape.dim[0].dim_value for v in [*g.input, *g.output]]


@pytest.fixture(scope="module")
def static_export(tk_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``tritonkit export --static --batch 4`` with the fp32 parity check on; (file, stdout)."""
    out = tmp_path_factory.mktemp("static") / "s4.onnx"
    proc = tk("export", str(tk_checkpoint), "-o", str(out), "--static", "--batch", str(BATCH))
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def test_export_writes_fixed_batch_and_prints_summary_when_static_batch_given(static_export):
    path, stdout = static_export
    assert _batch_dims(path) == [BATCH, BATCH]
    rec = json.loads(path.with_name(f"{path.name}.export.json").read_text())
    assert rec["batch"] == BATCH and rec["dynamic_batch"] is False and rec["parity"]["logits"]["max_abs"] < 1e-4
    assert f"input  input: float32 [{BATCH}, 1, 8, 8]" in stdout
    assert f"output logits: float32 [{BATCH}, 10]" in stdout
    assert f"fixed at {BATCH}" in stdout and "MiB" in stdout
    assert f"next: tritonkit repo add s4 --onnx {path} --max-batch 0" in stdout


def test_export_summary_next_step_publishes_when_run_as_printed(static_export, tmp_path):
    """The printed command, run as is (plus a scratch repository), publishes a config Triton accepts."""
    nxt = next(ln for ln in static_export[1].splitlines() if ln.startswith("next: "))
    args = shlex.split(nxt.removeprefix("next: "))[1:]
    proc = tk(*args, "--repository", str(tmp_path / "repo"), "--no-warmup")
    assert proc.returncode == 0, proc.stderr
    config = (tmp_path / "repo" / "s4" / "config.pbtxt").read_text()
    assert "max_batch_size" not in config and f"dims: {BATCH}" in config  # 0 (the default) is not written


def test_export_defaults_to_batch_one_when_static_without_batch(tk_checkpoint, tmp_path):
    out = tmp_path / "s1.onnx"
    proc = tk("export", str(tk_checkpoint), "-o", str(out), "--static", "--no-parity")
    assert proc.returncode == 0, proc.stderr
    assert _batch_dims(out) == [1, 1]


def test_export_refuses_in_one_line_and_writes_nothing_when_batch_given_without_static(tk_checkpoint, tmp_path):
    line = one_error_line(tk("export", str(tk_checkpoint), "-o", str(tmp_path / "m.onnx"), "--batch", "3"))
    assert "add --static" in line
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_in_one_line_when_static_batch_is_zero(tk_checkpoint, tmp_path):
    line = one_error_line(tk("export", str(tk_checkpoint), "-o", str(tmp_path / "m.onnx"), "--static", "--batch", "0"))
    assert "N >= 1" in line
    assert list(tmp_path.iterdir()) == []


def test_parity_compares_at_fixed_batch_only_when_model_batch_is_static(static_export, tk_checkpoint):
    proc = tk("parity", str(tk_checkpoint), str(static_export[0]), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] and report["accuracy_drop"] == 0
    sizes = {r["case"]: r["batch"] for r in report["rows"]}
    assert sizes.pop("real test (all)") == 269  # the whole split, in padded chunks of 4
    assert set(sizes.values()) == {BATCH} and {"real b4", "random b4"} == set(sizes)
    assert any(f"fixed batch {BATCH}" in n for n in report["notes"])


def test_parity_refuses_in_one_line_when_fixed_batches_differ(static_export, tk_checkpoint, tmp_path):
    other = tmp_path / "s2.onnx"
    assert tk("export", str(tk_checkpoint), "-o", str(other), "--static", "--batch", "2", "--no-parity").returncode == 0
    line = one_error_line(tk("parity", str(static_export[0]), str(other)))
    assert "different fixed batch sizes" in line and f"{other.name} 2" in line


def test_profile_local_profiles_fixed_batch_only_and_says_so_when_model_batch_is_static(static_export):
    proc = tk("profile-local", str(static_export[0]), "--batch", "1,8", "--iterations", "5", "--warmup", "1",
              "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [r["batch_size"] for r in result["rows"]] == [BATCH]
    assert f"fixed at {BATCH}" in result["note"] and "asked 1, 8" in result["note"]


def test_profile_local_refuses_in_one_line_when_shape_contradicts_fixed_dims(static_export):
    line = one_error_line(tk("profile-local", str(static_export[0]), "--shape", "input:1,9,8", "--iterations", "2"))
    assert "contradicts the model's dims [1, 8, 8]" in line


def test_quantize_calibrates_in_fixed_batches_when_model_batch_is_static(static_export, tmp_path):
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).normal(size=(10, 1, 8, 8)).astype(np.float32))  # 10 = 2 chunks + 2
    out = tmp_path / "s4.int8.onnx"
    proc = tk("quantize", str(static_export[0]), "--precision", "int8", "--calibration-data", str(calib),
              "--calibration-samples", "10", "--no-check", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert _batch_dims(out) == [BATCH, BATCH]
    rec = json.loads(out.with_name(f"{out.name}.quantize.json").read_text())
    assert rec["calibration"]["samples"] == 10 and rec["accuracy"]["int8"] is not None


def test_repo_add_publishes_unbatched_and_says_so_when_graph_batch_is_fixed(static_export, tmp_path):
    """With the default --max-batch 32, a fixed-batch graph is published with max_batch_size 0 (full dims)."""
    out = static_export[0]
    proc = tk("repo", "add", "s4", "--onnx", str(out), "--repository", str(tmp_path / "repo"), "--no-warmup")
    assert proc.returncode == 0, proc.stderr
    assert f"fixed batch of {BATCH}: published with max_batch_size 0" in proc.stdout
    config = (tmp_path / "repo" / "s4" / "config.pbtxt").read_text()
    assert "max_batch_size" not in config and "dynamic_batching" not in config and f"dims: {BATCH}" in config
