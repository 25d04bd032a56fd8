"""The embedded Triton serving ONNX models through tritonkit's Python-based onnxruntime backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from contract.errors import ServerError
from contract.spec import ModelSpec, TensorSpec
from tests.server.conftest import (
    GATHER_SPEC,
    MULTI_SPEC,
    TINY_SPEC,
    Gather,
    Multi,
    TinyCnn,
    ort_run,
    write_model,
    write_string_model,
)
from toolkit.dtypes import wire_from_numpy
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port

pytestmark = pytest.mark.server


def _ports() -> dict[str, int]:
    return {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    write_model(root, "tiny", TinyCnn(), TINY_SPEC)
    write_model(root, "tiny_backend", TinyCnn(), TINY_SPEC, platform="backend")
    write_model(root, "gather", Gather(), GATHER_SPEC)
    write_model(root, "multi", Multi(), MULTI_SPEC)
    write_string_model(root, "strings")
    return root


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory, triton_home: Path):
    log = tmp_path_factory.mktemp("log") / "triton.log"
    srv = EmbeddedServer(repo, log_path=log, **_ports())
    srv.start(timeout=120)
    print(f"\nembedded Triton start() -> ready: {srv.ready_seconds:.2f} s (4 models)")
    yield srv
    srv.stop()


def _http(server: EmbeddedServer) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(server.http_url, concurrency=16)


def _inputs(feeds: dict[str, np.ndarray]) -> list[httpclient.InferInput]:
    inputs = []
    for name, arr in feeds.items():
        i = httpclient.InferInput(name, list(arr.shape), wire_from_numpy(arr.dtype))
        i.set_data_from_numpy(arr)
        inputs.append(i)
    return inputs


def _infer_http(client, model: str, feeds: dict[str, np.ndarray], outputs: list[str]):
    result = client.infer(model, _inputs(feeds), outputs=[httpclient.InferRequestedOutput(o) for o in outputs])
    return [result.as_numpy(o) for o in outputs]


def _infer_concurrently(server: EmbeddedServer, model: str, feeds: list[dict[str, np.ndarray]], output: str):
    """All requests in flight at once (the HTTP client's own async pool); result or exception each."""
    client = _http(server)
    try:
        pending = [client.async_infer(model, _inputs(f)) for f in feeds]
        results = []
        for p in pending:
            try:
                results.append(p.get_result().as_numpy(output))
            except InferenceServerException as exc:
                results.append(exc)
        return results
    finally:
        client.close()


def test_start_reports_ready_when_repository_is_valid(server: EmbeddedServer) -> None:
    assert server.is_ready()
    assert server.ready_seconds is not None and server.ready_seconds < 120
    assert server.http_url.startswith("127.0.0.1:") and server.grpc_url.startswith("127.0.0.1:")


@pytest.mark.parametrize("model", ["tiny", "tiny_backend"])
def test_infer_matches_onnxruntime_when_sent_over_grpc_and_http(server: EmbeddedServer, repo: Path,
                                                                model: str) -> None:
    x = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)
    (expected,) = ort_run(repo / model / "1" / "model.onnx", {"input": x})

    client = _http(server)
    try:
        (got_http,) = _infer_http(client, model, {"input": x}, ["logits"])
    finally:
        client.close()

    g = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        i = grpcclient.InferInput("input", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        got_grpc = g.infer(model, [i]).as_numpy("logits")
    finally:
        g.close()
    assert np.max(np.abs(got_http - expected)) <= 1e-5
    assert np.max(np.abs(got_grpc - expected)) <= 1e-5


def test_infer_round_trips_every_dtype_when_model_has_several_inputs_and_outputs(server: EmbeddedServer) -> None:
    rng = np.random.default_rng(2)
    feeds = {
        "a": rng.random((4, 3)).astype(np.float16),
        "b": rng.integers(-100, 100, (4, 3)).astype(np.int32),
        "c": rng.integers(0, 255, (4, 3)).astype(np.uint8),
        "d": rng.random((4, 3)) > 0.5,
    }
    client = _http(server)
    try:
        a2, b1, c0, nd = _infer_http(client, "multi", feeds, ["a2", "b1", "c0", "nd"])
    finally:
        client.close()
    assert a2.dtype == np.float16 and np.array_equal(a2, feeds["a"] * 2)
    assert b1.dtype == np.int32 and np.array_equal(b1, feeds["b"] + 1)
    assert c0.dtype == np.uint8 and np.array_equal(c0, feeds["c"])
    assert nd.dtype == np.bool_ and np.array_equal(nd, ~feeds["d"])


def test_infer_round_trips_strings_when_model_takes_bytes(server: EmbeddedServer) -> None:
    text = np.array([[b"seven"], [b"acht"], [b"nine"]], dtype=object)
    client = _http(server)
    try:
        (same,) = _infer_http(client, "strings", {"text": text}, ["same"])
    finally:
        client.close()
    assert same.tolist() == text.tolist()


def _stats(server: EmbeddedServer, model: str) -> tuple[int, int]:
    g = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        s = g.get_inference_statistics(model, as_json=True)["model_stats"][0]
    finally:
        g.close()
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))


def test_requests_are_batched_when_sent_concurrently(server: EmbeddedServer, repo: Path) -> None:
    before_inf, before_exec = _stats(server, "tiny")
    xs = [np.random.default_rng(i).random((1, 1, 8, 8), dtype=np.float32) for i in range(16)]
    results = _infer_concurrently(server, "tiny", [{"input": x} for x in xs], "logits")
    inf, exe = _stats(server, "tiny")
    assert inf - before_inf == 16
    assert exe - before_exec < 16, "dynamic batching should run fewer executions than requests"
    (expected,) = ort_run(repo / "tiny" / "1" / "model.onnx", {"input": np.concatenate(xs)})
    assert np.max(np.abs(np.concatenate(results) - expected)) <= 1e-5


def test_bad_request_gets_error_and_others_succeed_when_batched_together(server: EmbeddedServer) -> None:
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    indices = [0, 1, 2, 3, 7, 1, 2, 3]  # 7 is out of range: ONNX Runtime fails on that request only
    before_inf, before_exec = _stats(server, "gather")
    feeds = [{"x": x, "idx": np.array([[i]], dtype=np.int64)} for i in indices]
    feeds.append({"x": x.astype(np.float64), "idx": np.array([[0]], dtype=np.int64)})  # wrong dtype
    results = _infer_concurrently(server, "gather", feeds, "y")
    assert isinstance(results[-1], InferenceServerException) and "FP64" in str(results[-1])
    for i, r in zip(indices, results):
        if i == 7:
            assert isinstance(r, InferenceServerException), "the out-of-range request must fail"
            assert "gather" in str(r)
        else:
            assert not isinstance(r, Exception), f"request idx={i} failed: {r}"
            assert r.tolist() == [[float(i)]]
    _, exe = _stats(server, "gather")
    assert exe - before_exec < len(indices), "the requests should have shared a batch"


def test_start_refuses_with_reason_per_model_when_config_does_not_match_graph(tmp_path: Path,
                                                                           triton_home: Path) -> None:
    wrong_dtype = ModelSpec(inputs=(TensorSpec("input", (1, 8, 8), "int32"),), outputs=TINY_SPEC.outputs)
    wrong_dims = ModelSpec(inputs=TINY_SPEC.inputs, outputs=(TensorSpec("logits", (12,)),))
    write_model(tmp_path, "bad_dtype", TinyCnn(), TINY_SPEC, config_spec=wrong_dtype)
    write_model(tmp_path, "bad_dims", TinyCnn(), TINY_SPEC, config_spec=wrong_dims)
    srv = EmbeddedServer(tmp_path, log_path=tmp_path / "log.txt", **_ports())
    with pytest.raises(ServerError) as err:
        srv.start(timeout=60)
    msg = str(err.value)
    assert "\n" not in msg
    assert "model 'bad_dtype'" in msg and "input 'input'" in msg and "TYPE_INT32" in msg
    assert "model 'bad_dims'" in msg and "output 'logits'" in msg
    assert not srv.is_running()


def test_start_refuses_in_one_line_when_port_is_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        ports = _ports()
        ports["grpc_port"] = port
        with pytest.raises(ServerError) as err:
            EmbeddedServer(tmp_path, **ports).start()
    assert "\n" not in str(err.value)
    assert f"grpc port {port}" in str(err.value) and "in use" in str(err.value)


def test_start_refuses_when_repository_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="does not exist"):
        EmbeddedServer(tmp_path / "nope", **_ports()).start()
