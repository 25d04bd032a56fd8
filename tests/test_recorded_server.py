"""Commands reach the server `tritonkit serve --detach` recorded, and --digits fits only digit-shaped models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toolkit.serve.ports import free_port

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def _tk(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def recorded_server(digits_build: dict, tmp_path: Path):
    """The digits repository plus a 3x16x16 model, served detached (recorded in this test's state home)."""
    from toolkit.api import ModelExporter
    from toolkit.repository.options import ServingOptions
    from toolkit.repository.publish import publish_onnx

    repo = tmp_path / "model_repository"
    shutil.copytree(digits_build["repository"], repo)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    onnx = ModelExporter(net, input_shape=(3, 16, 16), num_outputs=4).export(tmp_path / "rgb.onnx")
    publish_onnx(repo, "rgb", onnx, ServingOptions(warmup=False))
    ports = [str(free_port()) for _ in range(3)]
    started = _tk("serve", "--repository", str(repo), "--http-port", ports[0], "--grpc-port", ports[1],
                  "--metrics-port", ports[2], "--detach")
    assert started.returncode == 0, started.stderr
    try:
        yield repo, f"127.0.0.1:{ports[1]}"
    finally:
        _tk("serve", "stop", "--repository", str(repo))


@pytest.mark.server
def test_evaluate_model_dials_the_recorded_server_when_no_triton_url_is_given(recorded_server) -> None:
    _, grpc_url = recorded_server
    proc = _tk("evaluate", "--model", "digits", "--bootstrap", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"] == f"digits@{grpc_url}" and report["num_samples"] == 269
    assert report["top1_accuracy"] > 0.95


def test_evaluate_model_refuses_in_one_line_when_no_server_is_recorded() -> None:
    proc = _tk("evaluate", "--model", "digits")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "no running server is recorded" in lines[0], proc.stderr


@pytest.mark.server
def test_predict_refuses_digits_in_one_line_when_the_model_takes_another_shape(recorded_server) -> None:
    _, grpc_url = recorded_server
    proc = _tk("predict", "rgb", "--digits", "2", "--url", grpc_url)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "--digits sends the embedded 1x8x8 digits" in lines[0] and "[3, 16, 16]" in lines[0]
