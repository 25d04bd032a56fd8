"""Parity between stages: runners, inputs, metrics, presets, the CLI table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from contract.errors import UsageError
from toolkit.cli import main
from toolkit.export.onnx import spec_from_onnx
from toolkit.export.parity import (
    Case,
    ParityError,
    compare,
    parity_cases,
    raise_if_failed,
    tolerance_for,
)
from toolkit.runners import OnnxRunner


def test_compare_passes_fp32_with_real_and_random_cases_when_checkpoint_vs_its_onnx(tk_checkpoint, tk_onnx):
    report = compare(tk_checkpoint, tk_onnx, opt_batch=4, max_batch=16)
    assert report.passed, report.table()
    cases = [r.case for r in report.rows]
    assert cases == ["real b1", "real b4", "real b16", "random b1", "random b4", "random b16", "real test (all)"]
    assert [r.batch for r in report.rows][:3] == [1, 4, 16]
    s = report.summary()["logits"]
    assert 0 < s["max_abs"] < 1e-4 and s["p99_abs"] <= s["max_abs"] and s["top1_agreement"] == 1.0
    assert report.accuracy_a == report.accuracy_b and report.accuracy_a > 0.9


def test_compare_fails_with_named_output_when_callable_adds_an_offset(tk_onnx):
    onnx_runner = OnnxRunner(tk_onnx)
    onnx_runner.activate()
    name = onnx_runner.input_names[0]

    def shifted(x: np.ndarray) -> np.ndarray:  # e.g. a Triton endpoint that lost its normalization
        return onnx_runner.infer({name: x})["logits"] + 1e-3

    report = compare(tk_onnx, shifted, spec=spec_from_onnx(tk_onnx))
    assert not report.passed
    assert report.failures[0].startswith("logits on real b1: max abs 0.001")
    with pytest.raises(ParityError, match="parity failed"):
        raise_if_failed(report)
    # the same offset is fine at fp16 tolerance
    assert compare(tk_onnx, shifted, spec=spec_from_onnx(tk_onnx), precision="fp16").passed


def test_compare_int8_preset_judges_decisions_not_elements_when_logits_are_scaled(tk_onnx):
    runner = OnnxRunner(tk_onnx)
    runner.activate()
    spec = spec_from_onnx(tk_onnx)
    scaled = compare(tk_onnx, lambda x: runner.infer({"input": x})["logits"] * 3.0, spec=spec, precision="int8")
    assert scaled.passed and scaled.accuracy_drop == 0.0  # argmax unchanged
    flipped = compare(tk_onnx, lambda x: -runner.infer({"input": x})["logits"], spec=spec, precision="int8")
    assert not flipped.passed
    assert any("top-1 agreement" in f for f in flipped.failures)
    assert any("accuracy drop" in f for f in flipped.failures)


def test_tolerance_for_applies_overrides_when_given_and_rejects_unknown_precision():
    t = tolerance_for("fp32", atol=1e-3, rtol=None)
    assert (t.atol, t.rtol) == (1e-3, 1e-5)
    assert tolerance_for("int8").max_accuracy_drop == 0.01
    with pytest.raises(UsageError, match="choose one of: fp32, fp16, int8"):
        tolerance_for("bf16")


def test_parity_cases_stay_in_trained_range_when_random(tk_onnx):
    spec = spec_from_onnx(tk_onnx)
    cases = parity_cases(spec, batch_sizes=(1, 8), seed=1)
    assert [c.name for c in cases] == ["random b1", "random b8"]  # no data set given: random only
    x = cases[1].feeds["input"]
    assert x.shape == (8, 1, 8, 8) and x.dtype == np.float32
    lo, hi = (0 - 0.3) / 0.4, (16 / 16 - 0.3) / 0.4
    assert x.min() >= lo - 1e-6 and x.max() <= hi + 1e-6


def test_compare_uses_given_cases_when_inputs_are_explicit(tk_onnx):
    x = np.zeros((3, 1, 8, 8), np.float32)
    report = compare(tk_onnx, tk_onnx, [Case("zeros", {"input": x})])
    assert [r.case for r in report.rows] == ["zeros"] and report.rows[0].max_abs == 0.0


def test_parity_cli_prints_table_and_exits_zero_when_stages_agree(tk_checkpoint, tk_onnx):
    res = CliRunner().invoke(main, ["parity", str(tk_checkpoint), str(tk_onnx)])
    assert res.exit_code == 0, res.output
    assert "max_abs" in res.output and res.output.strip().endswith("PASS")


def test_parity_cli_prints_json_and_fails_when_tolerance_is_impossible(tk_checkpoint, tk_onnx):
    res = CliRunner().invoke(main, ["parity", str(tk_checkpoint), str(tk_onnx), "--json", "--atol", "0",
                                    "--rtol", "0"])
    assert res.exit_code == 1
    body = res.output[: res.output.rindex("}") + 1]
    data = json.loads(body)
    assert data["passed"] is False and data["tolerance"]["atol"] == 0
    assert set(data["summary"]["logits"]) == {"max_abs", "max_rel", "p99_abs", "top1_agreement"}
    assert res.output.strip().splitlines()[-1].startswith("error: parity failed")


def test_parity_cli_prints_one_line_when_file_is_corrupt(tk_onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(tk_onnx.read_bytes()[:500])
    res = CliRunner().invoke(main, ["parity", str(tk_onnx), str(bad)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "corrupt or truncated" in lines[0]


def test_parity_refuses_unknown_suffix_when_path_is_not_a_model(tk_onnx, tmp_path):
    res = CliRunner().invoke(main, ["parity", str(tk_onnx), str(tmp_path / "x.txt")])
    assert res.exit_code == 2 and "cannot tell what this is" in res.output
