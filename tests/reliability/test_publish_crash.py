"""SIGKILL ``tritonkit repo add`` at random moments while Triton polls the repository: nothing the
server can see is ever half-written, old versions are untouched, and the next publish is served."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.crashing import add_command, crash_loop, repository_index
from toolkit.repository import publish_onnx, verify_version, version_numbers
from toolkit.server.embedded import EmbeddedServer
from toolkit.server.ports import free_port

pytestmark = pytest.mark.server
RUNS = 12


def test_random_sigkills_during_publish_leave_only_complete_versions_when_server_polls(
        tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    onnx = tmp_path / "digits.onnx"
    shutil.copy(digits_onnx, onnx)
    first = publish_onnx(repo, "digits", onnx)
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            model_control="poll", poll_secs=1, log_path=tmp_path / "triton.log")
    with server:
        report = crash_loop(repo, "digits", onnx, server.http_url, server.admin_headers, RUNS, seed=8)
        print(f"\npublish crashes: runs={report.runs} kills={report.kills} completed={report.completed} "
              f"corrupt={len(report.corrupt)} ready_checked={report.ready_checked}")
        assert report.kills >= RUNS // 3, f"too few kills to prove anything: {report}"
        assert report.corrupt == [] and report.old_changed == []
        assert verify_version(first.path) == []

        # The next publish succeeds and, once polled, is what the server serves.
        done = subprocess.run(add_command(repo, "digits", onnx), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        newest = version_numbers(repo / "digits")[-1]
        assert verify_version(repo / "digits" / str(newest)) == []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = {(r["name"], r["version"]) for r in repository_index(server.http_url, server.admin_headers)
                     if r.get("state") == "READY"}
            if ("digits", str(newest)) in ready:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"version {newest} not READY after 30 s; index: {ready}")

        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(server.http_url)
        x = np.zeros((1, 1, 8, 8), np.float32)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        out = client.infer("digits", [inp], model_version=str(newest)).as_numpy("logits")
        assert out.shape == (1, 10) and np.isfinite(out).all()
        assert "failed to load" not in server.read_log()
