"""The Triton runner against a real embedded server: the same answers as ONNX Runtime, through
``tritonkit parity`` machinery and the evaluator's callable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from toolkit.cli.evaluate import evaluate
from toolkit.export.parity import compare
from toolkit.runners import OnnxRunner
from toolkit.runners.triton import TritonRunner
from trainers.data import load_digits_splits, normalize

pytestmark = pytest.mark.server


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_runner_matches_onnxruntime_in_parity_when_serving_the_same_model(
        triton_server, digits_onnx: Path, protocol: str) -> None:
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with TritonRunner(url, "digits", protocol) as served:
        assert served.spec is not None and served.spec.input.name in served.get_input_metadata()
        report = compare(OnnxRunner(digits_onnx), served, spec=served.spec, opt_batch=4, max_batch=64)
        assert report.passed, report.table()
        assert report.accuracy_a is not None and report.accuracy_a == report.accuracy_b
        logits = served.logits(np.zeros((3, *served.spec.input.shape), np.float64))  # cast to FP32
        assert logits.shape == (3, len(served.spec.labels)) and served.last_inference_time() > 0
    assert served.predictor is None


@pytest.mark.parametrize("model", ["digits", "digits_image"])
def test_evaluate_command_through_the_triton_runner_equals_onnxruntime_accuracy(
        triton_server, digits_onnx: Path, model: str) -> None:
    """The tensor model and the image ensemble in front of it (sent raw UINT8 pixels) score the same."""
    res = CliRunner().invoke(evaluate, ["--triton", triton_server.grpc_url, "--model", model, "--data", "digits",
                                        "--bootstrap", "20", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    test = load_digits_splits()["test"]
    with OnnxRunner(digits_onnx) as local:
        x = normalize(test.images, local.spec.scale, local.spec.mean, local.spec.std)
        expected = float((local.logits(x).argmax(1) == test.labels).mean())
    assert report["num_samples"] == len(test.labels) and report["top1_accuracy"] == expected
