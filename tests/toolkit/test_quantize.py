"""FP16 and INT8 ONNX: structure, fp32 I/O, held-out accuracy record, calibration errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from contract.errors import UsageError
from toolkit.cli import main
from toolkit.export.onnx import spec_from_onnx
from toolkit.export.precision import load_calibration, onnx_precision, quantize_onnx
from toolkit.export.records import record_path


@pytest.fixture(scope="module")
def fp16_model(tk_onnx, tmp_path_factory):
    return quantize_onnx(tk_onnx, tmp_path_factory.mktemp("fp16") / "m.fp16.onnx", precision="fp16")


@pytest.fixture(scope="module")
def int8_model(tk_onnx, tmp_path_factory):
    return quantize_onnx(tk_onnx, tmp_path_factory.mktemp("int8") / "m.int8.onnx", precision="int8")


def _io_types(path):
    g = onnx.load(str(path)).graph
    return [v.type.tensor_type.elem_type for v in [*g.input, *g.output]]


def test_quantize_fp16_keeps_fp32_io_and_accuracy_when_converting_digits_model(fp16_model, tk_onnx):
    path, record = fp16_model
    assert _io_types(path) == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]
    assert onnx_precision(path) == "fp16" and onnx_precision(tk_onnx) == "fp32"
    assert path.stat().st_size < 0.6 * tk_onnx.stat().st_size
    assert record["accuracy"]["fp32"] - record["accuracy"]["fp16"] <= 0.005
    assert json.loads(record_path(path, "quantize").read_text())["precision"] == "fp16"
    assert spec_from_onnx(path) == spec_from_onnx(tk_onnx)  # metadata survives


def test_quantize_int8_writes_symmetric_qdq_within_one_point_when_calibrated_on_digits(int8_model):
    path, record = int8_model
    proto = onnx.load(str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {i.name: i for i in proto.graph.initializer}
    zero_points = [onnx.numpy_helper.to_array(inits[n.input[2]]) for n in proto.graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # TensorRT-style
    assert _io_types(path) == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]
    assert record["calibration"] == {"source": "digits", "samples": 256, "method": "MinMax", "split": "train",
                                     "nodes_kept_fp32": ["/features.0/Conv"]}
    first = next(n for n in proto.graph.node if n.name == "/features.0/Conv")
    assert not any("DequantizeLinear" in i for i in first.input)  # reads fp32 input and weights
    assert record["accuracy"]["fp32"] - record["accuracy"]["int8"] <= 0.01
    assert record["parity"]["passed"] is True


def test_load_calibration_raises_expected_shape_when_data_has_wrong_shape(tk_onnx, tmp_path):
    spec = spec_from_onnx(tk_onnx)
    npz = tmp_path / "cal.npz"
    np.savez(npz, input=np.zeros((4, 3, 32, 32), np.float32))
    with pytest.raises(UsageError, match=r"shape \(4, 3, 32, 32\) but input 'input' expects \(N, 1, 8, 8\)"):
        load_calibration(npz, spec)


def test_load_calibration_reads_npy_folder_and_images_when_given_a_directory(tk_onnx, tmp_path):
    from PIL import Image

    spec = spec_from_onnx(tk_onnx)
    np.save(tmp_path / "a.npy", np.zeros((5, 1, 8, 8), np.float32))
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "w.png")
    x = load_calibration(tmp_path, spec)
    assert x.shape == (6, 1, 8, 8)
    assert np.isclose(x.max(), (16 * 0.0625 - 0.3) / 0.4)  # white -> top of value range, normalized


def test_quantize_cli_writes_model_and_record_when_int8_from_npz(tk_onnx, tmp_path):
    from trainers.data import load_digits_splits, normalize

    train = load_digits_splits()["train"]
    np.savez(tmp_path / "cal.npz", input=normalize(train.images[:64], 1 / 16, (0.3,), (0.4,)))
    out = tmp_path / "out" / "q.onnx"
    res = CliRunner().invoke(main, ["quantize", str(tk_onnx), "--precision", "int8", "--calibration-data",
                                    str(tmp_path / "cal.npz"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "accuracy on held-out set" in res.output
    rec = json.loads(record_path(out, "quantize").read_text())
    assert rec["calibration"]["samples"] == 64 and rec["command"].startswith("tritonkit quantize")
    assert sorted(p.name for p in out.parent.iterdir()) == ["q.onnx", "q.onnx.quantize.json"]


def test_quantize_cli_prints_one_line_and_writes_nothing_when_calibration_shape_is_wrong(tk_onnx, tmp_path):
    np.save(tmp_path / "cal.npy", np.zeros((4, 8, 8), np.float32))
    out = tmp_path / "out" / "q.onnx"
    res = CliRunner().invoke(main, ["quantize", str(tk_onnx), "--precision", "int8", "--calibration-data",
                                    str(tmp_path / "cal.npy"), "-o", str(out)])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "expects (N, 1, 8, 8)" in res.output
    assert not out.parent.exists()  # nothing written, not even the output folder


def test_quantize_cli_refuses_missing_calibration_source_when_path_does_not_exist(tk_onnx, tmp_path):
    res = CliRunner().invoke(main, ["quantize", str(tk_onnx), "--precision", "int8", "--calibration-data",
                                    str(tmp_path / "nope"), "-o", str(tmp_path / "q.onnx")])
    assert res.exit_code == 2 and "not found" in res.output and not (tmp_path / "q.onnx").exists()


def test_quantize_refuses_in_one_line_and_writes_nothing_when_calibration_samples_is_zero(tmp_path):
    from tests.profiling.conftest import one_error_line, tk

    out = tmp_path / "out" / "q.onnx"
    line = one_error_line(tk("quantize", str(tmp_path / "never-read.onnx"), "--precision", "int8",
                             "--calibration-samples", "0", "-o", str(out)))
    assert "--calibration-samples 0 must be 1 or more" in line
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="must be 1 or more"):
        quantize_onnx(tmp_path / "never-read.onnx", out, precision="int8", calibration_samples=0)


def test_quantize_warns_and_calibrates_on_what_exists_when_fewer_samples_than_asked(tk_onnx, tmp_path):
    from tests.profiling.conftest import tk

    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(size=(12, 1, 8, 8)).astype(np.float32))
    out = tmp_path / "q.onnx"
    proc = tk("quantize", str(tk_onnx), "--precision", "int8", "--calibration-data", str(tmp_path / "cal.npy"),
              "--calibration-samples", "100", "--no-check", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 1 and "holds 12 samples, fewer than the 100 asked" in warnings[0], proc.stderr
    rec = json.loads(record_path(out, "quantize").read_text())
    assert rec["calibration"]["samples"] == 12 and rec["warnings"] == [warnings[0].removeprefix("warning: ")]


@pytest.mark.parametrize("command", ["export", "quantize"])
def test_output_is_refused_in_one_line_and_nothing_written_when_its_folder_refuses_files(
        command, tk_checkpoint, tk_onnx, tmp_path):
    """/proc refuses new files even for root (for whom access() says yes everywhere)."""
    from tests.profiling.conftest import one_error_line, tk

    args = (["export", str(tk_checkpoint)] if command == "export"
            else ["quantize", str(tk_onnx), "--precision", "fp16"])
    line = one_error_line(tk(*args, "-o", "/proc/tritonkit-test/m.onnx"))
    assert "cannot write output /proc/tritonkit-test/m.onnx" in line and "choose another -o" in line
    assert not Path("/proc/tritonkit-test").exists()
