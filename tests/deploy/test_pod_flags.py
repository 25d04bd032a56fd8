"""The Deployment's tritonserver flags, run for real: Triton 2.51 takes them and serves an S3 repository.

The embedded server runs with exactly the container's ``args`` (ports moved to free loopback ones and
bound to 127.0.0.1, as every test server here is) against the digits repository uploaded to a moto S3
server, with no download folder set, as in the pod. It must become ready (the startup/readiness probe's
endpoint) and live, restrict the repository API to the admin header (checked by the server's own start-up
check and again here), export the latency summaries the dashboard's p99 panel reads, and localize the
repository under ``/tmp`` (the writable emptyDir the read-only root filesystem leaves it).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.objectstore import CREDENTIALS
from toolkit.deploy.k8s import DeployOptions, triton_args
from toolkit.repository.remote import parse_remote
from toolkit.serve.embedded import ADMIN_HEADER, KEY_PLACEHOLDER, KEY_VARIABLE, EmbeddedServer
from toolkit.serve.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]


class PodArgsServer(EmbeddedServer):
    """The embedded server started with a Deployment's container args instead of tritonkit's own flags."""

    def __init__(self, pod_args: list[str], placeholder_repo: Path, **kwargs: Any) -> None:
        super().__init__(placeholder_repo, **kwargs)
        self.pod_args = pod_args

    def command(self) -> list[str]:
        binary = super().command()[0]  # prepares the install and the argv_key library
        moved = ("--http-port=", "--grpc-port=", "--metrics-port=")
        # the kubelet expands $(TRITONKIT_ADMIN_KEY) from the Secret; here argv_key does it from the environment
        args = [a.replace(f"$({KEY_VARIABLE})", KEY_PLACEHOLDER) for a in self.pod_args if not a.startswith(moved)]
        return [binary, *args,
                f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
                f"--metrics-port={self.metrics_port}", f"--http-address={self.host}", f"--grpc-address={self.host}",
                f"--metrics-address={self.host}", f"--backend-directory={self._install.backend_dir}",
                f"--cache-directory={self._install.cache_dir}", "--allow-gpu-metrics=false"]


def _tmp_folders() -> set[str]:
    return {n for n in os.listdir("/tmp") if n.startswith("folder")}


def _status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_triton_serves_s3_with_the_deployment_args(deploy_s3, digits_build, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = deploy_s3.make_bucket(f"pod-{uuid.uuid4().hex[:8]}")
    client = deploy_s3.client()
    repo = Path(digits_build["repository"])
    for path in repo.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"prod/{path.relative_to(repo)}")
    opts = DeployOptions(repository=deploy_s3.url(bucket, "prod"))
    opts.url = opts.cluster_url = parse_remote(opts.repository)  # the pod would reach the storage at this URL
    args = triton_args(opts)
    assert f"--model-repository={deploy_s3.url(bucket, 'prod')}" in args

    before = _tmp_folders()
    placeholder = tmp_path / "unused"
    placeholder.mkdir()
    server = PodArgsServer(args, placeholder, http_port=free_port(), grpc_port=free_port(),
                           metrics_port=free_port(), log_path=tmp_path / "triton.log")
    server.start(timeout=240)  # also checks the restricted APIs refuse a request without the header
    try:
        base = f"http://{server.http_url}"
        assert _status(f"{base}/v2/health/ready")[0] == 200
        assert _status(f"{base}/v2/health/live")[0] == 200
        assert _status(f"{base}/v2/repository/index", b"{}")[0] in (401, 403)
        code, body = _status(f"{base}/v2/repository/index", b"{}", server.admin_headers)
        assert code == 200 and "digits" in {m["name"] for m in json.loads(body)}
        assert ADMIN_HEADER in server.admin_headers
        infer = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]}
        assert _status(f"{base}/v2/models/digits/infer", json.dumps(infer).encode(),
                       {"Content-Type": "application/json"})[0] == 200
        metrics = _status(f"http://{server.metrics_url}/metrics")[1].decode()
        assert 'nv_inference_request_summary_us{model="digits",version="1",quantile="0.99"}' in metrics
        mine = [n for n in _tmp_folders() - before if os.stat(f"/tmp/{n}").st_uid == os.geteuid()]
        assert any(Path("/tmp", n, "config.pbtxt").is_file() or any(Path("/tmp", n).rglob("config.pbtxt"))
                   for n in mine), f"no localized model under /tmp: {sorted(mine)}"
    finally:
        server.stop()
