"""`tritonkit serve --runtime docker` on a real engine, both ways tritonkit drives one.

- ``docker``: the docker CLI against ``podman system service`` (started here on a private socket,
  DOCKER_HOST set, stopped by its PID), serving a repository tritonkit did not write (hand-made
  ONNX model and configs, a python model that tries to write into its repository, a slow one);
- ``podman``: podman directly, serving the default repository (what ``make repo`` builds).

One detached container per way, started through the CLI and shared by the tests below; the last test
of each stops it (``tritonkit serve stop``) and checks that nothing is left. Skipped, with the reason,
where no container can run (see ``container_engine`` in conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.container.podman_service import PodmanService
from toolkit.serve.engine import LABEL, Engine
from toolkit.serve.ports import free_port

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
SLOW_SECONDS = 4.0
NUL = b"\0"

WRITER_PY = '''
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.folder = os.path.join(args["model_repository"], args["model_version"])

    def execute(self, requests):
        responses = []
        for _ in requests:
            try:
                with open(os.path.join(self.folder, "written-by-the-model.txt"), "w") as fh:
                    fh.write("x")
                outcome = "wrote into the repository"
            except OSError as exc:
                outcome = f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
            out = pb_utils.Tensor("RESULT", np.array([outcome.encode()], dtype=object))
            responses.append(pb_utils.InferenceResponse([out]))
        return responses
'''

SLOW_PY = f'''
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        time.sleep({SLOW_SECONDS})
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]
'''

CONFIGS = {
    "handmade": '''name: "handmade"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 4 ] } ]
''',
    "writer": '''backend: "python"
max_batch_size: 0
input [ { name: "TRIGGER", data_type: TYPE_INT32, dims: [ 1 ] } ]
output [ { name: "RESULT", data_type: TYPE_STRING, dims: [ 1 ] } ]
''',
    "slow": '''backend: "python"
max_batch_size: 0
input [ { name: "IN", data_type: TYPE_INT32, dims: [ 1 ] } ]
output [ { name: "OUT", data_type: TYPE_INT32, dims: [ 1 ] } ]
''',
}


def handmade_onnx(path: Path) -> None:
    """y = tanh(x @ W + b): an ONNX file written with onnx.helper, not by tritonkit."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["z"]),
         helper.make_node("Tanh", ["z"], ["y"])],
        "handmade", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def handmade_repository(root: Path) -> Path:
    repo = root / "handmade_repository"
    handmade_onnx(repo / "handmade" / "1" / "model.onnx")
    for name, source in (("writer", WRITER_PY), ("slow", SLOW_PY)):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(source)
    for name, text in CONFIGS.items():
        (repo / name / "config.pbtxt").write_text(text)
    for folder in [repo, *repo.rglob("*")]:
        if folder.is_dir():
            os.chmod(folder, 0o755)  # the image's user (not root) reads them
    # Writable by everyone on disk: only the read-only mount can stop the model from writing.
    os.chmod(repo / "writer" / "1", 0o777)
    return repo


# -- the engines ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def podman_service(container_engine: str, tmp_path_factory: pytest.TempPathFactory):
    """``podman system service`` on a private socket: the Docker-compatible engine the docker CLI drives."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on PATH: the docker-CLI path needs one (client only; the engine is podman's)")
    service = PodmanService(container_engine, docker, tmp_path_factory.mktemp("podman-service"))
    try:
        failed = service.wait_answering()
        if failed:
            pytest.fail(failed)
        yield service.engine
    finally:
        service.stop()


def _cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, *args], capture_output=True, text=True, timeout=timeout, env=env)


def infer(http_url: str, model: str, inputs: list[dict[str, Any]], timeout: float = 60) -> dict[str, Any]:
    body = json.dumps({"inputs": inputs}).encode()
    req = urllib.request.Request(f"http://{http_url}/v2/models/{model}/infer", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - local URL
        return json.loads(r.read())


def output(reply: dict[str, Any], name: str) -> np.ndarray:
    out = next(o for o in reply["outputs"] if o["name"] == name)
    return np.asarray(out["data"], dtype=np.float32 if out["datatype"] == "FP32" else object).reshape(out["shape"])


@pytest.fixture(scope="module", params=["docker", "podman"])
def served(request: pytest.FixtureRequest, triton_image: str, container_engine: str,
           tmp_path_factory: pytest.TempPathFactory):
    """A detached container started by `tritonkit serve --runtime docker --detach` through one engine path."""
    way = request.param
    root = tmp_path_factory.mktemp(f"served-{way}")
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "TRITONKIT_CONTAINER_ENGINE")}
    env["XDG_STATE_HOME"] = str(root / "state")
    if way == "docker":
        engine: Engine = request.getfixturevalue("podman_service")
        env["DOCKER_HOST"] = str(engine.docker_host)
        repo = handmade_repository(root)
    else:
        engine = Engine("podman", container_engine)
        repo = root / "model_repository"
        shutil.copytree(request.getfixturevalue("digits_build")["repository"], repo)
    env["TRITONKIT_CONTAINER_ENGINE"] = way
    ports = [free_port() for _ in range(3)]
    t0 = time.monotonic()
    r = _cli(["serve", "--runtime", "docker", "--image", triton_image, "--repository", str(repo), "--detach",
              "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])], env)
    started = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    state_file = next((root / "state").glob("tritonkit/serve/*/server.json"))
    state = json.loads(state_file.read_text())
    print(f"\n{way}: `serve --detach` returned ready in {started:.1f} s", file=sys.stderr)
    info = {"way": way, "engine": engine, "env": env, "repo": repo, "state": state, "root": root,
            "state_file": state_file, "stopped": False}
    yield info
    if not info["stopped"]:
        _cli(["serve", "stop", "--repository", str(repo)], env, timeout=120)
        engine.run("rm", "-f", state["container_id"], timeout=60)


# -- outputs ----------------------------------------------------------------------------------------

def test_served_outputs_equal_onnxruntime_in_process(served: dict[str, Any]) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    if served["way"] == "podman":  # the default repository
        model, name_in, name_out, x = "digits", "input", "logits", rng.random((3, 1, 8, 8), dtype=np.float32) * 16
        onnx_file = served["repo"] / "digits" / "1" / "model.onnx"
    else:  # a repository tritonkit did not write
        model, name_in, name_out, x = "handmade", "x", "y", rng.standard_normal((5, 4)).astype(np.float32)
        onnx_file = served["repo"] / "handmade" / "1" / "model.onnx"
    reply = infer(served["state"]["http_url"], model,
                  [{"name": name_in, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}])
    want = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {name_in: x})[0]
    np.testing.assert_allclose(output(reply, name_out), want, rtol=1e-5, atol=1e-5)


def test_same_repository_gives_same_answers_in_embedded_server_and_container(served: dict[str, Any],
                                                                              request: pytest.FixtureRequest) -> None:
    """The default repository: the embedded server (session fixture) and the container agree."""
    if served["way"] != "podman":
        pytest.skip("the embedded twin serves the default repository, which the podman-direct container serves")
    triton_server = request.getfixturevalue("triton_server")
    rng = np.random.default_rng(1)
    x = rng.random((4, 1, 8, 8), dtype=np.float32) * 16
    inputs = [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    in_container = output(infer(served["state"]["http_url"], "digits", inputs), "logits")
    embedded = output(infer(triton_server.http_url, "digits", inputs), "logits")
    np.testing.assert_allclose(in_container, embedded, rtol=1e-6, atol=1e-6)


def test_python_model_writing_into_repository_gets_read_only_error(served: dict[str, Any]) -> None:
    if served["way"] != "docker":
        pytest.skip("the writing model is in the hand-made repository (docker-CLI container)")
    reply = infer(served["state"]["http_url"], "writer", [{"name": "TRIGGER", "shape": [1], "datatype": "INT32",
                                                            "data": [1]}])
    outcome = str(output(reply, "RESULT")[0])
    assert "Read-only file system" in outcome and "Errno 30" in outcome, outcome
    assert not (served["repo"] / "writer" / "1" / "written-by-the-model.txt").exists()


# -- what the container exposes -----------------------------------------------------------------------

def other_address() -> str | None:
    """A non-loopback IPv4 address of this machine (the one its default route leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_ports_answer_on_loopback_only(served: dict[str, Any]) -> None:
    addr = other_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try the ports on")
    state = served["state"]
    for url in (state["http_url"], state["grpc_url"], state["metrics_url"]):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with pytest.raises(OSError), socket.create_connection((addr, port), timeout=3):
            pass


def test_admin_key_is_in_no_inspect_output_nor_container_process_while_it_works(served: dict[str, Any],
                                                                               container_engine: str) -> None:
    engine: Engine = served["engine"]
    state = served["state"]
    key = state["admin_headers"]["tritonkit-admin-key"]
    cid = state["container_id"]
    inspected = engine.run("container", "inspect", cid, timeout=30)
    assert inspected.returncode == 0 and cid in inspected.stdout
    assert key not in inspected.stdout
    assert "TRITONKIT_ADMIN_KEY_FD=0" in inspected.stdout  # the descriptor's number is all it names
    # podman itself looks inside (an exec through podman 4.3's Docker API leaves its conmon behind).
    dump = subprocess.run([container_engine, "exec", "--user", "0", cid, "sh", "-c",
                           "for p in /proc/[0-9]*; do cat $p/cmdline $p/environ 2>/dev/null; echo; done"],
                          capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert "tritonserver" in dump.stdout and "@TRITONKIT_ADMIN_KEY@" in dump.stdout  # it did read every process
    assert key not in dump.stdout
    url = f"http://{state['http_url']}/v2/logging"
    from toolkit.serve.embedded import http_get

    assert http_get(url, headers={"tritonkit-admin-key": key})[0] == 200
    assert http_get(url)[0] != 200
    assert http_get(url, headers={"tritonkit-admin-key": "@TRITONKIT_ADMIN_KEY@"})[0] != 200


def test_serve_status_reports_the_container_ready(served: dict[str, Any]) -> None:
    r = _cli(["serve", "status", "--repository", str(served["repo"]), "--json"], served["env"], timeout=60)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["running"] and st["ready"] and st["runtime"] == "docker"
    assert {m["name"] for m in st["models"] if m["state"] == "READY"} >= (
        {"digits"} if served["way"] == "podman" else {"handmade", "writer", "slow"})


# -- stop: graceful, nothing left (last: it ends the shared container) ------------------------------------

def leftovers(engine: Engine, state: dict[str, Any]) -> list[str]:
    """What is left of the container: the engine's labelled containers and this machine's processes that
    name it (client, conmon) or run in its cgroup."""
    found = [f"container {c}" for c in engine.labelled() if c.startswith(state["container_id"])]
    cid, name = state["container_id"], state["container"]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes()
            cgroup = Path(entry.path, "cgroup").read_text(errors="replace")
        except OSError:
            continue
        if cid.encode() in cmd or name.encode() in cmd or cid in cgroup:
            found.append(f"process {entry.name}: {cmd.replace(NUL, b' ')[:120]!r}")
    return found


def test_serve_stop_completes_request_in_flight_and_leaves_nothing(served: dict[str, Any]) -> None:
    engine: Engine = served["engine"]
    state = served["state"]
    if served["way"] == "docker":
        replies: list[Any] = []

        def slow() -> None:
            try:
                replies.append(infer(state["http_url"], "slow", [{"name": "IN", "shape": [1], "datatype": "INT32",
                                                                   "data": [41]}], timeout=60))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                replies.append(exc)

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(1.0)  # the request is in the model now
        t0 = time.monotonic()
        r = _cli(["serve", "stop", "--repository", str(served["repo"])], served["env"], timeout=120)
        took = time.monotonic() - t0
        thread.join(60)
        assert r.returncode == 0 and r.stdout.startswith("stopped the server"), r.stdout + r.stderr
        assert replies and isinstance(replies[0], dict), replies
        assert output(replies[0], "OUT").tolist() == [41.0]
        print(f"\ndocker: graceful stop with a {SLOW_SECONDS:g} s request in flight took {took:.1f} s",
              file=sys.stderr)
    else:
        # A crashed client: its container runs on; `serve stop` finds it by the record, checks it with
        # the engine (label, ID) and removes it.
        client = state["pid"]
        os.kill(client, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{client}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.inspect(state["container_id"]) is not None  # still there without its client
        r = _cli(["serve", "stop", "--repository", str(served["repo"])], served["env"], timeout=120)
        assert r.returncode == 0 and "had already exited" in r.stdout, r.stdout + r.stderr
    served["stopped"] = True
    deadline = time.monotonic() + 15
    while leftovers(engine, state) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(engine, state) == []
    assert engine.inspect(state["container_id"]) is None
    assert not served["state_file"].exists()
    ps = engine.run("ps", "-a", "-q", "--filter", f"label={LABEL}", timeout=30)
    assert state["container_id"][:12] not in ps.stdout


# -- a broken model's own reason ------------------------------------------------------------------------

def test_broken_model_error_line_reaches_the_user(triton_image: str, container_engine: str,
                                                  tmp_path: Path) -> None:
    repo = tmp_path / "broken_repository"
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"this is not an ONNX file")
    (repo / "broken" / "config.pbtxt").write_text(CONFIGS["handmade"].replace('"handmade"', '"broken"'))
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), TRITONKIT_CONTAINER_ENGINE="podman")
    ports = [str(free_port()) for _ in range(3)]
    r = _cli(["serve", "--runtime", "docker", "--image", triton_image, "--repository", str(repo), "--timeout", "90",
              "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]], env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    assert "model 'broken'" in lines[0] and "Traceback" not in r.stderr
    assert "protobuf" in lines[0].lower() or "onnx" in lines[0].lower(), lines[0]
    ps = subprocess.run([container_engine, "ps", "-a", "-q", "--filter", f"label={LABEL}", "--filter",
                         "name=tritonkit-"], capture_output=True, text=True, timeout=30)
    names = subprocess.run([container_engine, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           timeout=30).stdout
    assert ports[0] not in names, (ps.stdout, names)
