"""`tritonkit serve --runtime docker` on an object-storage repository (a moto S3 server on loopback).

Nothing is mounted: Triton reads the URL. The object store listens on this machine's loopback, which a
container on the engine's bridge cannot reach, so tritonkit runs such a container in the machine's network
(``--network host``, Triton binding 127.0.0.1 itself). The credentials travel like the admin key (the
client's standard input, set inside with setenv): no value in ``podman inspect`` nor in any process's
``/proc`` environment in the container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.container.test_container_serve import handmade_onnx, infer, output
from tests.objectstore import CREDENTIALS, moto_server
from toolkit.serve.ports import free_port

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
CONFIG = '''name: "handmade"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 4 ] } ]
'''


def test_object_storage_repository_serves_in_container_with_no_credential_in_inspect_or_processes(
        triton_image: str, container_engine: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    onnx_file = tmp_path / "model.onnx"
    handmade_onnx(onnx_file)
    with moto_server(log=tmp_path / "moto.log") as s3:
        s3.make_bucket("tk-container")
        client = s3.client()
        client.upload_file(str(onnx_file), "tk-container", "repo/handmade/1/model.onnx")
        client.put_object(Bucket="tk-container", Key="repo/handmade/config.pbtxt", Body=CONFIG.encode())
        url = s3.url("tk-container", "repo")
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        env.update(CREDENTIALS, XDG_STATE_HOME=str(tmp_path / "state"), TRITONKIT_CONTAINER_ENGINE="podman")
        ports = [str(free_port()) for _ in range(3)]
        r = subprocess.run([TRITONKIT, "serve", "--runtime", "docker", "--image", triton_image, "--repository", url,
                            "--detach", "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]],
                           capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        state = json.loads(next((tmp_path / "state").glob("tritonkit/serve/*/server.json")).read_text())
        try:
            x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
            reply = infer(state["http_url"], "handmade",
                          [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}])
            want = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            np.testing.assert_allclose(output(reply, "y"), want, rtol=1e-5, atol=1e-5)
            cid = state["container_id"]
            inspected = subprocess.run([container_engine, "container", "inspect", cid], capture_output=True,
                                       text=True, timeout=30).stdout
            info = json.loads(inspected)[0]
            assert [m["Destination"] for m in info["Mounts"]] == ["/opt/tritonkit/argv_key.so"]  # no repository
            assert info["HostConfig"]["NetworkMode"] == "host"  # the loopback object store is reachable
            dump = subprocess.run([container_engine, "exec", "--user", "0", cid, "sh", "-c",
                                   "for p in /proc/[0-9]*; do cat $p/cmdline $p/environ 2>/dev/null; echo; done"],
                                  capture_output=True, text=True, timeout=60)
            assert dump.returncode == 0 and "tritonserver" in dump.stdout
            for secret in (CREDENTIALS["AWS_SECRET_ACCESS_KEY"], state["admin_headers"]["tritonkit-admin-key"]):
                assert secret not in inspected and secret not in dump.stdout
        finally:
            stop = subprocess.run([TRITONKIT, "serve", "stop", "--repository", url], capture_output=True, text=True,
                                  timeout=120, env=env)
        assert stop.returncode == 0 and stop.stdout.startswith("stopped the server"), stop.stdout + stop.stderr
        gone = subprocess.run([container_engine, "container", "exists", state["container_id"]], timeout=30)
        assert gone.returncode == 1
