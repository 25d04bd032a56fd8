"""Poll mode: a version published into the repository is served without one failed request, and a
broken one leaves the last good version serving."""

from __future__ import annotations

import os
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server.conftest import TINY_SPEC, TinyCnn, ort_run, publish_version, write_model
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port

pytestmark = pytest.mark.server


def _index_status(server: EmbeddedServer, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"http://{server.http_url}/v2/repository/index", data=b"{}", method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_new_version_is_served_and_broken_one_ignored_without_failed_requests_in_poll_mode(tmp_path: Path,
                                                                                triton_home: Path) -> None:
    repo = tmp_path / "repo"
    write_model(repo, "tiny", TinyCnn(seed=0), TINY_SPEC)
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    (v1,) = ort_run(repo / "tiny" / "1" / "model.onnx", {"input": x})

    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            model_control="poll", poll_secs=1, log_path=tmp_path / "log.txt")
    with server:
        assert _index_status(server, {}) in (400, 403), "repository API must need the admin header"
        assert _index_status(server, server.admin_headers) == 200

        client = httpclient.InferenceServerClient(server.http_url)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        failures, seen_v1, seen_v2, published = [], 0, 0, False
        v2, broken_at = None, 0.0
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                try:
                    out = client.infer("tiny", [inp]).as_numpy("logits")
                except Exception as exc:  # noqa: BLE001 - every failure is recorded
                    failures.append(str(exc))
                    continue
                if np.allclose(out, v1, atol=1e-5):
                    seen_v1 += 1
                elif v2 is not None and np.allclose(out, v2, atol=1e-5):
                    seen_v2 += 1
                    if seen_v2 == 20:
                        _publish_broken(repo, version=3)
                        broken_at = time.monotonic()
                    if broken_at and time.monotonic() - broken_at > 4:  # a few polls saw v3 fail
                        break
                else:
                    failures.append("output matches neither version")
                if not published and seen_v1 >= 20:
                    publish_version(repo, "tiny", TinyCnn(seed=1), TINY_SPEC, version=2)
                    (v2,) = ort_run(repo / "tiny" / "2" / "model.onnx", {"input": x})
                    published = True
        finally:
            client.close()
        log = server.read_log()
    assert failures == []
    assert seen_v1 >= 20 and seen_v2 >= 20, f"v1 {seen_v1}, v2 {seen_v2}: the new version was not served"
    assert broken_at, "the broken version was not published"
    assert "failed to load 'tiny' version 3" in log, "the poller should have tried the broken version"


def _publish_broken(repo: Path, version: int) -> None:
    """A version whose model.onnx is not ONNX: the poller must keep serving the last good one."""
    stage = Path(tempfile.mkdtemp(dir=repo.parent, prefix=".stage-"))
    (stage / "model.onnx").write_bytes(b"not an onnx file")
    os.rename(stage, repo / "tiny" / str(version))
