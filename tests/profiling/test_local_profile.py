"""In-process profiling: real ONNX Runtime and torch, no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.profiling.conftest import one_error_line, tk


def test_profile_local_reports_percentiles_throughput_and_memory_when_onnx(digits_onnx: Path) -> None:
    proc = tk("profile-local", str(digits_onnx), "--batch", "1,4", "--iterations", "20", "--warmup", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["runtime"].startswith("onnxruntime") and "RSS" in result["memory_method"]
    assert [r["batch_size"] for r in result["rows"]] == [1, 4]
    for r in result["rows"]:
        assert r["iterations"] == 20 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["samples_per_sec"] > 0 and r["peak_memory_bytes"] >= 0


def test_profile_local_prints_table_when_no_json(digits_onnx: Path) -> None:
    proc = tk("profile-local", str(digits_onnx), "--batch", "2", "--iterations", "5")
    assert proc.returncode == 0, proc.stderr
    assert "samples/s" in proc.stdout and "p99 ms" in proc.stdout


def test_profiler_times_checkpoint_with_torch(digits_checkpoint: Path) -> None:
    from toolkit.perf.local import PerformanceProfiler

    prof = PerformanceProfiler(digits_checkpoint, threads=1).profile(batch_sizes=[1, 2], num_iterations=10, warmup=1)
    assert prof.runtime.startswith("torch") and [r.batch_size for r in prof.rows] == [1, 2]
    assert all(r.samples_per_sec > 0 for r in prof.rows)
    assert prof.at_batch(1.5) == pytest.approx((prof.rows[0].samples_per_sec + prof.rows[1].samples_per_sec) / 2)


def test_profile_local_names_the_needed_shape_when_dims_variable(dynamic_onnx: Path) -> None:
    line = one_error_line(tk("profile-local", str(dynamic_onnx), "--iterations", "2"))
    assert "--shape input:1,N,N" in line


def test_profile_local_runs_variable_model_when_shape_given(dynamic_onnx: Path) -> None:
    proc = tk("profile-local", str(dynamic_onnx), "--shape", "input:1,16,16", "--batch", "2", "--iterations", "3",
              "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"][0]["batch_size"] == 2


def test_profile_local_fails_in_one_line_when_plan_and_no_tensorrt(tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here: the missing-dependency path cannot happen")
    except ImportError:
        pass
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not an engine")
    proc = tk("profile-local", str(plan))
    assert "tensorrt" in one_error_line(proc) and proc.returncode == 3


def test_profile_local_lists_valid_types_when_suffix_unknown(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    assert ".onnx" in one_error_line(tk("profile-local", str(f)))


def test_profile_local_refuses_in_one_line_when_shape_contradicts_fixed_dims(dynamic_onnx: Path) -> None:
    """Channels are fixed at 1 (height and width vary): a --shape with 3 channels or a missing dim is refused."""
    for given in ("input:3,16,16", "input:16,16"):
        line = one_error_line(tk("profile-local", str(dynamic_onnx), "--shape", given, "--iterations", "2"))
        assert f"--shape {given} contradicts the model's dims" in line and "--shape input:1,N,N" in line


def test_model_kind_refuses_missing_file_without_loading_a_runtime_when_local_file_is_absent(tmp_path: Path) -> None:
    """What ``profile --local`` can check before its sweep (the file was found missing only after it)."""
    from contract.errors import UsageError
    from toolkit.model_files import model_kind

    with pytest.raises(UsageError, match="model file not found"):
        model_kind(tmp_path / "missing.onnx")
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert model_kind(tmp_path / "m.onnx") == "onnx"
