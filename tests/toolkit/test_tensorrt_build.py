"""TensorRT build: profiles, precision choice, record, error paths (CPU); the real build (gpu)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from contract.errors import MissingDependencyError, UsageError
from toolkit.cli import main
from toolkit.export.records import write_record
from toolkit.export.tensorrt import (
    RECORD_KEYS,
    EngineDescription,
    build_record,
    choose_precision,
    derive_profiles,
    max_batch_of,
    read_record,
    require_tensorrt,
)


def _tensorrt_missing_reason() -> str | None:
    try:
        require_tensorrt()
    except MissingDependencyError as exc:
        return str(exc)
    return None


TRT_MISSING = _tensorrt_missing_reason()


def test_derive_profiles_puts_batch_first_when_shapes_are_static():
    profiles = derive_profiles({"input": [1, 8, 8]}, min_batch=1, opt_batch=8, max_batch=32)
    assert profiles == [{"input": {"min": [1, 1, 8, 8], "opt": [8, 1, 8, 8], "max": [32, 1, 8, 8]}}]
    assert max_batch_of(profiles) == 32


def test_derive_profiles_fills_dynamic_dims_from_reference_when_exported_with_dynamic_hw():
    profiles = derive_profiles({"input": [1, -1, -1]}, reference_shapes={"input": [1, 8, 8]}, max_batch=4,
                               opt_batch=2)
    assert profiles[0]["input"]["max"] == [4, 1, 8, 8]
    with pytest.raises(UsageError, match="dimension 2 is dynamic"):
        derive_profiles({"input": [1, -1, -1]})


def test_max_batch_of_takes_smallest_input_max_when_inputs_differ():
    profiles = [{"a": {"min": [1, 3], "opt": [4, 3], "max": [16, 3]},
                 "b": {"min": [1, 2], "opt": [4, 2], "max": [8, 2]}}]
    assert max_batch_of(profiles) == 8


@pytest.mark.parametrize(("mn", "opt", "mx"), [(4, 2, 8), (1, 16, 8), (2, 1, 1), (1, 1, 0), (0, 1, 4)])
def test_derive_profiles_raises_usage_error_when_batch_options_inconsistent(mn, opt, mx):
    with pytest.raises(UsageError, match="--min-batch 1 --opt-batch 8 --max-batch 32"):
        derive_profiles({"input": [1, 8, 8]}, min_batch=mn, opt_batch=opt, max_batch=mx)


@pytest.mark.parametrize(
    ("requested", "onnx_prec", "major", "precision", "flags", "typed"),
    [
        ("auto", "fp32", 10, "fp32", {}, False),
        ("fp16", "fp32", 10, "fp16", {"fp16": True}, False),
        ("auto", "fp16", 10, "fp16", {"fp16": True}, False),
        ("int8", "int8", 10, "int8", {"fp16": True, "int8": True}, False),
        ("auto", "fp16", 11, "fp16", {}, True),
        ("int8", "int8", 11, "int8", {}, True),
        ("auto", "fp32", 11, "fp32", {}, True),
    ],
)
def test_choose_precision_uses_flags_on_10_and_onnx_types_on_11(requested, onnx_prec, major, precision, flags,
                                                                 typed):
    choice = choose_precision(requested, onnx_prec, major)
    assert (choice.precision, choice.flags, choice.strongly_typed) == (precision, flags, typed)


def test_choose_precision_points_to_quantize_when_tensorrt11_asked_for_other_precision():
    with pytest.raises(UsageError, match="tritonkit quantize MODEL --precision fp16"):
        choose_precision("fp16", "fp32", 11)
    with pytest.raises(UsageError, match="INT8 needs an ONNX with Q/DQ"):
        choose_precision("int8", "fp32", 10)


def test_build_record_has_exact_keys_and_round_trips_when_written_beside_plan(tmp_path):
    desc = EngineDescription("10.3.0", "NVIDIA A100-SXM4-40GB", "8.0",
                             [{"name": "input", "dtype": "float", "shape": [1, 8, 8]}],
                             [{"name": "logits", "dtype": "float", "shape": [10]}])
    profiles = derive_profiles({"input": [1, 8, 8]}, opt_batch=8, max_batch=16)
    rec = build_record(desc, precision="fp16", profiles=profiles, build_seconds=12.3456,
                       call="engine_from_network(...)", plan_sha256="ab" * 32, onnx_sha256="cd" * 32,
                       created="2026-01-01T00:00:00+00:00")
    assert tuple(rec) == RECORD_KEYS
    assert rec["max_batch_size"] == 16 and rec["build_seconds"] == 12.346
    plan = tmp_path / "model.plan"
    path = write_record(plan, "plan", rec)
    assert path.name == "model.plan.json"
    assert read_record(plan) == json.loads(path.read_text()) == rec


def test_read_record_names_missing_keys_when_record_is_incomplete(tmp_path):
    (tmp_path / "m.plan.json").write_text(json.dumps({"tensorrt_version": "10.0"}))
    with pytest.raises(Exception, match="plan record lacks"):
        read_record(tmp_path / "m.plan")


@pytest.mark.skipif(TRT_MISSING is None, reason="tensorrt and a GPU are present here")
def test_build_cli_exits_3_with_one_line_and_writes_nothing_when_tensorrt_missing(tk_onnx, tmp_path):
    out = tmp_path / "out" / "m.plan"
    res = CliRunner().invoke(main, ["build", str(tk_onnx), "-o", str(out)])
    assert res.exit_code == 3
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and ("TensorRT" in lines[0] or "GPU" in lines[0])
    assert not (tmp_path / "out").exists()  # not even the folder


def test_build_cli_exits_2_when_batch_options_inconsistent(tk_onnx, tmp_path):
    res = CliRunner().invoke(main, ["build", str(tk_onnx), "-o", str(tmp_path / "m.plan"), "--min-batch", "8",
                                    "--opt-batch", "4", "--max-batch", "2"])
    assert res.exit_code == 2 and "min <= opt <= max" in res.output
    assert list(tmp_path.iterdir()) == []


def test_build_cli_reports_corrupt_onnx_before_looking_for_tensorrt(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    res = CliRunner().invoke(main, ["build", str(bad), "-o", str(tmp_path / "m.plan")])
    assert res.exit_code == 1 and "corrupt or truncated" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


@pytest.mark.gpu
@pytest.mark.skipif(TRT_MISSING is not None, reason=TRT_MISSING or "")
def test_build_writes_plan_and_record_matching_onnx_when_tensorrt_and_gpu_present(tk_onnx, tmp_path):
    from toolkit.export.parity import compare
    from toolkit.export.tensorrt import plan_from_onnx

    plan = plan_from_onnx(tk_onnx, tmp_path / "m.plan", min_batch=1, opt_batch=4, max_batch=16)
    rec = read_record(plan)
    assert rec["max_batch_size"] == 16 and rec["inputs"][0]["shape"] == [1, 8, 8]
    assert compare(tk_onnx, plan, precision="fp16", opt_batch=4, max_batch=16).passed


@pytest.mark.gpu
@pytest.mark.skipif(TRT_MISSING is not None, reason=TRT_MISSING or "")
def test_build_uses_the_fixed_batch_and_records_max_batch_0_when_onnx_batch_is_static(tk_checkpoint, tmp_path):
    from toolkit.export.onnx import onnx_from_checkpoint
    from toolkit.export.parity import compare
    from toolkit.export.tensorrt import plan_from_onnx

    static = onnx_from_checkpoint(tk_checkpoint, tmp_path / "s4.onnx", dynamic_batch=False, batch=4)
    plan = plan_from_onnx(static, tmp_path / "s4.plan", min_batch=1, opt_batch=8, max_batch=32)
    rec = read_record(plan)
    assert rec["fixed_batch"] == 4 and rec["max_batch_size"] == 0
    assert rec["profiles"][0]["input"] == {"min": [4, 1, 8, 8], "opt": [4, 1, 8, 8], "max": [4, 1, 8, 8]}
    assert compare(static, plan, precision="fp16").passed
