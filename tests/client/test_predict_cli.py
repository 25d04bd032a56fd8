"""``tritonkit predict`` run for real: images, JSON lines, and each error as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.client.test_images import save_digit_png

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, "predict", *args], capture_output=True, text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    from trainers.data import load_digits_splits

    folder = tmp_path_factory.mktemp("pngs")
    test = load_digits_splits()["test"]
    for i in range(12):
        save_digit_png(test.images[i], folder / f"d{i:02d}.png")
    return folder, test.labels[:12]


@pytest.mark.server
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_predict_images_gives_same_labels_as_onnxruntime_when_spec_from_repository(
    triton_server, digits_build, digit_pngs, protocol
) -> None:
    from toolkit.client.images import preprocess_images
    from toolkit.export.onnx import run_onnx, spec_from_onnx

    folder, _ = digit_pngs
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    proc = run_cli("digits", str(folder), "--url", url, "--protocol", protocol, "--repository",
                   str(digits_build["repository"]), "--top-k", "3", "--batch-size", "5", "--concurrency", "3",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    *rows, summary = [json.loads(line) for line in proc.stdout.splitlines()]
    files = sorted(folder.iterdir())
    assert [r["file"] for r in rows] == [str(f) for f in files]
    local = run_onnx(digits_build["onnx"], preprocess_images(files, spec_from_onnx(digits_build["onnx"])))
    assert [r["label"] for r in rows] == [str(k) for k in local.argmax(1)]
    assert all(len(r["topk"]) == 3 and r["latency_ms"] > 0 for r in rows)
    assert summary["n"] == 12 and summary["accuracy"] is None and summary["latency_ms"]["count"] == 3


@pytest.mark.server
def test_predict_prints_table_with_topk_and_latency(triton_server, digits_onnx, digit_pngs) -> None:
    folder, _ = digit_pngs
    proc = run_cli("digits", str(folder / "d00.png"), str(folder / "d01.png"), "--url", triton_server.grpc_url,
                   "--spec", str(digits_onnx), "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.strip().splitlines()
    assert header.startswith("input") and "request" in header
    assert len(lines) == 3 and lines[0].startswith(str(folder / "d00.png")) and " ms" in lines[0]
    assert len(lines[0].split()) == 1 + 2 * 2 + 3 + 2  # file, 2 x (label score), request "#1 (2 in)", latency "ms"
    assert lines[-1].startswith("2 inputs in 1 request(s) via grpc://")


@pytest.mark.server
def test_predict_fails_in_one_line_when_a_file_is_not_an_image(triton_server, digits_onnx, tmp_path) -> None:
    bad = tmp_path / "readme.png"
    bad.write_text("hello")
    line = one_error_line(run_cli("digits", str(bad), "--url", triton_server.grpc_url, "--spec", str(digits_onnx)))
    assert str(bad) in line and "image" in line


@pytest.mark.server
def test_predict_names_expected_shape_when_spec_gives_another_size(triton_server, digit_pngs, tmp_path) -> None:
    from trainers.recipes import digits_model_spec

    spec = digits_model_spec([str(i) for i in range(10)]).to_dict()
    spec["inputs"][0]["shape"] = [1, 16, 16]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    folder, _ = digit_pngs
    line = one_error_line(run_cli("digits", str(folder / "d00.png"), "--url", triton_server.grpc_url,
                                  "--spec", str(tmp_path / "spec.json")))
    assert "expects FP32 [N, 1, 8, 8]" in line and "[1, 1, 16, 16]" in line


@pytest.mark.server
def test_predict_names_expected_dtype_when_array_is_float64(triton_server, tmp_path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float64))
    line = one_error_line(run_cli("digits", str(tmp_path / "x.npy"), "--url", triton_server.http_url,
                                  "--protocol", "http"))
    assert "expects FP32 [N, 1, 8, 8], got float64" in line


@pytest.mark.server
def test_predict_images_uses_the_spec_the_served_config_carries(triton_server, digits_onnx, digit_pngs) -> None:
    from toolkit.client.images import preprocess_images
    from toolkit.export.onnx import run_onnx, spec_from_onnx

    folder, _ = digit_pngs
    proc = run_cli("digits", str(folder), "--url", triton_server.grpc_url, "--json")
    assert proc.returncode == 0, proc.stderr
    *rows, _ = [json.loads(line) for line in proc.stdout.splitlines()]
    files = sorted(folder.iterdir())
    local = run_onnx(digits_onnx, preprocess_images(files, spec_from_onnx(digits_onnx))).argmax(1)
    assert [int(r["label"]) for r in rows] == local.tolist()


@pytest.mark.server
def test_predict_asks_for_a_spec_when_server_carries_none(sleepy_server, digit_pngs) -> None:
    folder, _ = digit_pngs
    line = one_error_line(run_cli("sleepy", str(folder / "d00.png"), "--url", sleepy_server.grpc_url))
    assert "--spec" in line and "--repository" in line


@pytest.mark.server
def test_predict_lists_ready_models_over_http_when_model_missing(triton_server) -> None:
    # This server was not started by `tritonkit serve`, so the CLI has no admin header for its
    # restricted model index: the unrestricted statistics API lists the loaded models instead.
    line = one_error_line(run_cli("nosuch", "--url", triton_server.http_url, "--protocol", "http"))
    assert "'nosuch' is not ready" in line and "digits" in line and "digits_image" in line


@pytest.mark.server
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_predictor_lists_ready_models_when_given_the_admin_header(triton_server, protocol) -> None:
    from contract.errors import ClientError
    from toolkit.client.predictor import Predictor

    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with pytest.raises(ClientError) as err:
        Predictor("nosuch", url, protocol, admin_headers=triton_server.admin_headers)
    assert "'nosuch' is not ready" in str(err.value) and "ready models: digits" in str(err.value)


def test_predict_names_url_and_how_to_start_when_no_http_server_answers() -> None:
    from toolkit.serve.ports import free_port

    url = f"127.0.0.1:{free_port()}"
    line = one_error_line(run_cli("digits", "--url", url, "--protocol", "http", "--timeout", "2"))
    assert f"http://{url}" in line and "tritonkit serve" in line


@pytest.mark.server
def test_predict_fails_in_one_line_when_request_times_out(sleepy_server, tmp_path) -> None:
    np.save(tmp_path / "slow.npy", np.full((1, 1), 3.0, np.float32))
    proc = run_cli("sleepy", str(tmp_path / "slow.npy"), "--url", sleepy_server.grpc_url, "--timeout", "0.5")
    line = one_error_line(proc)
    assert "timed out after 0.5 s" in line and "--timeout" in line


@pytest.mark.server
def test_predict_shared_memory_uses_the_admin_header_of_the_server_tritonkit_serve_started(
        digits_build, digit_pngs, tmp_path) -> None:
    """`tritonkit serve` restricts the shared-memory API; `predict` in the same folder finds the header."""
    import os
    import shutil

    from toolkit.serve.ports import free_port

    shutil.copytree(digits_build["repository"], tmp_path / "model_repository")
    ports = [str(free_port()) for _ in range(3)]

    def tk(*args: str, cwd: Path = tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TRITONKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", **env})

    started = tk("serve", "--runtime", "embedded", "--detach", "--http-port", ports[0], "--grpc-port", ports[1],
                 "--metrics-port", ports[2])
    try:
        assert started.returncode == 0, started.stderr
        folder, _ = digit_pngs
        for protocol, port in (("grpc", ports[1]), ("http", ports[0])):
            ok = tk("predict", "digits", str(folder), "--url", f"127.0.0.1:{port}", "--protocol", protocol,
                    "--shared-memory", "on", "--json")
            assert ok.returncode == 0, ok.stderr
            assert json.loads(ok.stdout.splitlines()[-1])["n"] == 12
        elsewhere = tmp_path / "elsewhere"  # the record is the user's, not the folder's: found from here too
        elsewhere.mkdir()
        assert tk("predict", "digits", str(folder), "--url", f"127.0.0.1:{ports[1]}", "--shared-memory", "on",
                  cwd=elsewhere).returncode == 0
        # Another user's view (no record of this server in its state folder): no header to send.
        line = one_error_line(tk("predict", "digits", str(folder), "--url", f"127.0.0.1:{ports[1]}",
                                 "--shared-memory", "on", cwd=elsewhere, XDG_STATE_HOME=str(tmp_path / "other")))
        assert "refused the shared-memory registration" in line and "no admin header was sent" in line, line
    finally:
        tk("serve", "stop")
