"""SIGKILL ``tritonkit repo add`` at publish step boundaries and at random moments while Triton polls
the repository: the server always serves every version the live config names, each with the config
its manifest recorded (batch size, dims, labels); nothing it can see is half-written; old versions
are untouched; and the next publish is served."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.publish_kills import TRITONKIT, kill_loop, ready_versions
from toolkit.repository.manifest import read_live_config, verify_version
from toolkit.repository.publish import publish_onnx
from toolkit.repository.storage import version_numbers
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port

pytestmark = pytest.mark.server
# The riskiest boundaries (around the version rename and the config switch) plus random moments;
# benchmarks/bench_soak.py --crash-runs N kills at every step.
STEPS = ["fsynced", "labels_written", "version_renamed", "config_replaced"]
RANDOM_KILLS = 3


def test_sigkills_during_publish_never_serve_a_version_under_another_config_when_server_polls(
        tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    onnx = tmp_path / "digits.onnx"
    shutil.copy(digits_onnx, onnx)
    first = publish_onnx(repo, "digits", onnx)
    v1 = {p.name: p.read_bytes() for p in first.path.iterdir()}
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            model_control="poll", poll_secs=1, log_path=tmp_path / "triton.log")
    with server:
        report = kill_loop(repo, "digits", onnx, server.http_url, server.admin_headers, steps=STEPS,
                           random_kills=RANDOM_KILLS, seed=8)
        print(f"\npublish kills: runs={report.runs} kills={report.kills} completed={report.completed} "
              f"mismatches={len(report.mismatches)} corrupt={len(report.corrupt)} "
              f"served_checked={report.served_checked} unpublished={report.unpublished}")
        assert report.kills >= len(STEPS), f"too few kills to prove anything: {report}"
        assert report.mismatches == [] and report.corrupt == [], report
        assert report.served_checked >= report.runs
        assert {p.name: p.read_bytes() for p in first.path.iterdir()} == v1  # never modified

        # The next publish succeeds and, once polled, is what the server serves.
        done = subprocess.run([TRITONKIT, "repo", "add", "digits", "--repository", str(repo), "--onnx", str(onnx),
                               "--no-warmup"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        newest = version_numbers(repo / "digits")[-1]
        assert verify_version(repo / "digits" / str(newest)) == []
        assert list(read_live_config(repo / "digits").version_policy.specific.versions)[-1] == newest
        deadline = time.monotonic() + 30
        while newest not in ready_versions(server.http_url, server.admin_headers, "digits"):
            if time.monotonic() > deadline:
                pytest.fail(f"version {newest} not READY after 30 s")
            time.sleep(0.5)

        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(server.http_url)
        x = np.zeros((1, 1, 8, 8), np.float32)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        out = client.infer("digits", [inp], model_version=str(newest)).as_numpy("logits")
        assert out.shape == (1, 10) and np.isfinite(out).all()
        assert "failed to load" not in server.read_log()
