"""Triton's config auto-complete, on by default as in stock Triton and off with ``strict_config``.

A real embedded Triton serves models whose configs leave inputs, outputs and ``max_batch_size`` to it:
ONNX models (completed by tritonkit's onnxruntime backend, as the native backend does) and python models
(completed by their own ``auto_complete_config``), with or without a config.pbtxt. Under
``strict_config`` the same models are refused, each with a line that says why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from contract.errors import ServerError
from tests.repository.config_cases.onnx import BATCHED, SCALAR, VECTOR
from tests.server.helpers import one_error_line, run_tritonkit
from toolkit.repository.validate import onnx_rules as rules
from toolkit.serve.embedded import EmbeddedServer, failed_models, http_get
from toolkit.serve.ports import free_port

pytestmark = pytest.mark.server

# Doubles x; its inputs and outputs come only from auto_complete_config.
PY_MODEL = '''import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        config.add_input({"name": "x", "data_type": "TYPE_FP32", "dims": [2]})
        config.add_output({"name": "y", "data_type": "TYPE_FP32", "dims": [2]})
        return config

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x")
                                                            .as_numpy() * 2)]) for r in requests]
'''


def _model(repo: Path, name: str, config: str | None, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = repo / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if config is not None:
        (repo / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auto_complete") / "repo"
    _model(root, "onnx_min", 'backend: "onnxruntime"\n', BATCHED)
    _model(root, "onnx_nocfg", None, VECTOR)  # rank-1 graph: auto-complete writes dims [1] + an empty reshape
    _model(root, "py_nobackend", "max_batch_size: 0\n", {"1/model.py": PY_MODEL})
    _model(root, "py_nocfg", None, {"1/model.py": PY_MODEL})
    # Complete config, no auto-complete needed: a scalar graph tensor declared dims [1] (max_batch_size 0).
    _model(root, "onnx_scalar", 'backend: "onnxruntime"\ninput [{ name: "x" data_type: TYPE_FP32 dims: [1] }]\n'
           'output [{ name: "y" data_type: TYPE_FP32 dims: [1] }]\n', SCALAR)
    return root


def _server(repo: Path, **kwargs: object) -> EmbeddedServer:
    return EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), **kwargs)


@pytest.fixture(scope="module")
def served(repo: Path):  # type: ignore[no-untyped-def]
    with _server(repo) as server:
        yield server


def _infer(server: EmbeddedServer, model: str, x: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(server.http_url)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp]).as_numpy("y")


def _served_config(server: EmbeddedServer, model: str) -> dict:
    status, body = http_get(f"http://{server.http_url}/v2/models/{model}/config", timeout=5)
    assert status == 200, body
    return json.loads(body)


def test_onnx_model_with_only_a_backend_serves_with_the_config_the_native_backend_would_fill(
        served: EmbeddedServer) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(_infer(served, "onnx_min", x), x)
    cfg = _served_config(served, "onnx_min")
    graph = ([rules.graph_tensor("x", "TYPE_FP32", [-1, 4])], [rules.graph_tensor("y", "TYPE_FP32", [-1, 4])])
    want, _ = rules.auto_complete({"backend": "onnxruntime"}, *graph)
    assert cfg["max_batch_size"] == want["max_batch_size"] == 4 and "dynamic_batching" in cfg
    assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in cfg["input"] + cfg["output"]] == [
        ("x", "TYPE_FP32", [4]), ("y", "TYPE_FP32", [4])]


def test_onnx_model_without_config_file_serves_a_rank_one_graph_through_an_empty_reshape(
        served: EmbeddedServer) -> None:
    cfg = _served_config(served, "onnx_nocfg")
    assert cfg["backend"] == "onnxruntime" and cfg["max_batch_size"] == 4
    assert cfg["input"][0]["reshape"] == {"shape": []} and [int(d) for d in cfg["input"][0]["dims"]] == [1]
    x = np.array([[1.5], [2.5]], dtype=np.float32)
    np.testing.assert_array_equal(_infer(served, "onnx_nocfg", x), x)


def test_scalar_graph_tensor_declared_dims_one_serves_without_reshape(served: EmbeddedServer) -> None:
    assert "reshape" not in _served_config(served, "onnx_scalar")["input"][0]
    np.testing.assert_array_equal(_infer(served, "onnx_scalar", np.array([7.5], np.float32)), [7.5])


@pytest.mark.parametrize("model", ["py_nobackend", "py_nocfg"])
def test_python_model_without_backend_serves_with_its_own_auto_complete(served: EmbeddedServer, model: str) -> None:
    assert _served_config(served, model)["backend"] == "python"
    np.testing.assert_array_equal(_infer(served, model, np.array([1, 2], np.float32)), [2, 4])


def test_strict_config_refuses_onnx_model_relying_on_auto_complete_with_a_clear_line(repo: Path) -> None:
    strict_repo = repo.parent / "strict"
    for name in ("onnx_min", "py_nobackend"):
        shutil.copytree(repo / name, strict_repo / name)
    server = _server(strict_repo, strict_config=True)
    assert "--disable-auto-complete-config" in server.command()
    with pytest.raises(ServerError) as info:
        server.start(timeout=60)
    message = str(info.value)
    assert "\n" not in message and "model 'onnx_min'" in message
    assert "lists no inputs" in message and "--strict-config" in message
    # Triton picks the python backend from model.py even without auto-complete (a core rule), so that
    # model loads; only its auto_complete_config is skipped, leaving it without inputs.
    assert set(failed_models(server.read_log())) == {"onnx_min"}


def test_serve_strict_config_refuses_a_model_folder_without_config_file_before_starting(repo: Path) -> None:
    r = run_tritonkit(["serve", "--strict-config", "--runtime", "embedded", "-r", str(repo),
                       "--http-port", str(free_port()), "--grpc-port", str(free_port()),
                       "--metrics-port", str(free_port())], cwd=repo.parent)
    line = one_error_line(r)
    assert "model folder onnx_nocfg" in line and "has no config.pbtxt" in line and "--strict-config" in line
