"""Attacks on `tritonkit serve` (issue 12, items 1, 4, 24, 25, 26), each performed for real: a user
snooping every command line while servers start, unauthenticated calls to the admin APIs. Hostile
state files (items 2 and 18) are in tests/server/test_state.py."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.conftest import write_slow_model
from tests.server.helpers import TRITONKIT, one_error_line, run_tritonkit
from toolkit.serve.embedded import ADMIN_HEADER, EmbeddedServer, http_get
from toolkit.serve.ports import free_port
from toolkit.serve.state import admin_headers_for, run_dir_for

SYSTEM_PYTHON = "/usr/bin/python3"
GRPC_KEY = f"triton-grpc-protocol-{ADMIN_HEADER}"

# Runs as user nobody: reads every /proc/*/cmdline and /proc/*/environ it can, as fast as it can,
# and on SIGTERM prints every distinct content it saw (it does not know the keys; the test checks).
POLLER = r"""
import base64, json, os, signal, sys
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
seen, reads, environ_reads, sweeps = set(), 0, 0, 0
print("polling", flush=True)
while not stop:
    sweeps += 1
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            reads += 1
            environ_reads += name == "environ"
            seen.add(data)
print(json.dumps({"uid": os.getuid(), "sweeps": sweeps, "reads": reads, "environ_reads": environ_reads,
                  "seen": [base64.b64encode(d).decode() for d in seen]}))
"""


def _as_nobody() -> list[str]:
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    pytest.skip("neither setpriv nor runuser is here to run the snooper as user nobody")


def _post(url: str, body: dict | None, headers: dict[str, str]) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else b"{}"
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -- item 1: the admin key is never observable, at any instant ------------------------------------

@pytest.mark.server
def test_admin_key_is_never_seen_by_other_user_when_server_starts_20_times(tmp_path: Path) -> None:
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} (a Python user nobody can run) is not here")
    repo = tmp_path / "empty_repository"
    repo.mkdir()
    poller = subprocess.Popen([*_as_nobody(), SYSTEM_PYTHON, "-c", POLLER], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    keys: list[str] = []
    canary = secrets.token_hex(16)
    starting = threading.Lock()

    def start_and_check(n: int) -> None:
        log = tmp_path / f"triton-{n}.log"
        with starting:  # one start at a time, so two lanes never pick the same free port
            server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                                    model_control="explicit", log_path=log)
            keys.append(server.admin_value)
            server.start(timeout=60)
        try:
            # The key was passed and works: without it the repository API would refuse this.
            assert _post(f"http://{server.http_url}/v2/repository/index", {}, server.admin_headers)[0] == 200
            assert _post(f"http://{server.http_url}/v2/repository/index", {}, {})[0] == 403
        finally:
            server.stop()
        assert server.admin_value not in log.read_text(errors="replace")

    try:
        assert poller.stdout is not None and poller.stdout.readline().strip() == "polling"
        # Two lanes of ten starts: each stop waits about a second for Triton to exit.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(start_and_check, range(20)))
        # Positive control: a secret that is on tritonserver's command line (a restricted statistics
        # API, the way the key used to be passed) is caught, so zero sightings above mean something.
        control = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                                 extra_args=[f"--http-restricted-api=statistics:canary={canary}"],
                                 log_path=tmp_path / "control.log")
        with control:
            assert control.is_ready()  # it lives on for Triton's ~1 s shutdown too
    finally:
        poller.send_signal(signal.SIGTERM)
        out, err = poller.communicate(timeout=60)
    report = json.loads(out)
    assert report["uid"] != 0
    seen = [base64.b64decode(s) for s in report["seen"]]
    sightings = sum(key.encode() in blob for key in keys for blob in seen)
    assert any(canary.encode() in blob for blob in seen), "the snooper missed a secret that was on argv"
    # The poller did race the servers: it read their command lines (with the placeholder).
    server_cmdlines = [b for b in seen if b.startswith(str(server_binary()).encode()) and b"restricted" in b]
    print(f"key snoop: {len(keys)} starts, {report['sweeps']} sweeps, {report['reads']} reads, "
          f"{report['environ_reads']} environ reads, {len(server_cmdlines)} server command lines seen, "
          f"{sightings} key sightings")
    assert len(keys) == 20 and len(server_cmdlines) >= len(keys) // 2
    assert sightings == 0


def server_binary() -> Path:
    from toolkit.serve.install import prepare_triton

    return prepare_triton().binary


def test_argv_key_library_keeps_key_out_of_argument_memory_and_stubs_when_preloaded(tmp_path: Path) -> None:
    """The preload library on its own: a child sees the key in argv, /proc shows only the placeholder,
    and neither the key nor LD_PRELOAD reaches the child's own children."""
    from toolkit.serve.embedded import KEY_PLACEHOLDER, KEY_VARIABLE
    from toolkit.serve.install import argv_key_library

    lib = argv_key_library()
    probe = (
        "import os, sys, subprocess\n"
        "mem = open(f'/proc/{os.getpid()}/cmdline', 'rb').read()\n"
        "env = open(f'/proc/{os.getpid()}/environ', 'rb').read()\n"
        "child = subprocess.run(['env'], capture_output=True).stdout\n"
        "print(sys.argv[1]); print(mem.hex()); print(env.hex()); print(child.hex()); print(sys.argv[2])\n"
    )
    key = "k3y" * 8
    out = subprocess.run(
        [sys.executable, "-c", probe, f"--http-restricted-api=logging:h={KEY_PLACEHOLDER}",
         f"--model-repository=/r/{KEY_PLACEHOLDER}"],
        env={"PATH": "/usr/bin:/bin", KEY_VARIABLE: key, "LD_PRELOAD": str(lib)},
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    assert out[0] == f"--http-restricted-api=logging:h={key}"
    mem, env, child = (bytes.fromhex(x) for x in out[1:4])
    assert key.encode() not in mem and KEY_PLACEHOLDER.encode() in mem
    assert key.encode() not in env
    assert key.encode() not in child and b"LD_PRELOAD" not in child and KEY_VARIABLE.encode() not in child
    # Only the restricted-API flags take the key: a placeholder typed into a path stays as it is.
    assert out[4] == f"--model-repository=/r/{KEY_PLACEHOLDER}"


def test_argv_key_library_ends_process_when_placeholder_has_no_key(tmp_path: Path) -> None:
    from toolkit.serve.embedded import KEY_PLACEHOLDER
    from toolkit.serve.install import argv_key_library

    r = subprocess.run([sys.executable, "-c", "print('ran')", f"--grpc-restricted-protocol=trace:h={KEY_PLACEHOLDER}"],
                       env={"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(argv_key_library())},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 111 and "ran" not in r.stdout and "TRITONKIT_ADMIN_KEY is not set" in r.stderr


def test_serve_is_refused_in_one_line_when_no_c_compiler_can_build_the_key_helper(tmp_path: Path) -> None:
    """Fail safe: without the helper the key would have to go on argv, so no server starts at all."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "model_repository").mkdir()
    ports = [str(free_port()) for _ in range(3)]
    r = subprocess.run([TRITONKIT, "serve", "--runtime", "embedded", "--model-control", "explicit",
                        "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "TRITONKIT_HOME": str(tmp_path / "home"), "PATH": str(tmp_path / "empty"),
                            "CC": ""})
    line = one_error_line(r)
    assert "no C compiler found" in line and "apt-get install gcc" in line
    assert not list((tmp_path / "home").glob("**/tritonserver"))
    assert not (run_dir_for(tmp_path / "model_repository") / "server.json").exists()


# -- items 4 and 26: shared memory, logging and trace answer only the admin key --------------------

@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory):
    """A server with model control none (the default): the admin APIs are restricted all the same."""
    repo = tmp_path_factory.mktemp("plain") / "repo"
    repo.mkdir()
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            log_path=repo.parent / "triton.log")
    server.start(timeout=120)
    yield server
    server.stop()


@pytest.fixture
def region():
    shm = shared_memory.SharedMemory(create=True, size=64)
    yield shm
    shm.close()
    shm.unlink()


def test_admin_apis_refuse_http_requests_without_key_when_model_control_is_none(plain_server, region) -> None:
    base = f"http://{plain_server.http_url}/v2"
    attacks = [
        (f"{base}/systemsharedmemory/region/stolen/register", {"key": f"/{region.name}", "offset": 0, "byte_size": 64}),
        (f"{base}/logging", {"log_verbose_level": 1}),
        (f"{base}/trace/setting", {"trace_rate": "1"}),
    ]
    for url, body in attacks:
        for headers in ({}, {ADMIN_HEADER: "wrong"}, {ADMIN_HEADER: "@TRITONKIT_ADMIN_KEY@"}):
            status, text = _post(url, body, headers)
            assert status == 403 and "restricted" in text, (url, headers, status, text)
    # Nothing was registered; with the key every one of them succeeds.
    assert "stolen" not in http_get(f"{base}/systemsharedmemory/status", headers=plain_server.admin_headers)[1].decode()
    for url, body in attacks:
        assert _post(url, body, plain_server.admin_headers)[0] == 200, url
    assert "stolen" in http_get(f"{base}/systemsharedmemory/status", headers=plain_server.admin_headers)[1].decode()
    assert _post(f"{base}/systemsharedmemory/region/stolen/unregister", None, plain_server.admin_headers)[0] == 200
    assert _post(f"{base}/logging", {"log_verbose_level": 0}, plain_server.admin_headers)[0] == 200


def test_admin_apis_refuse_grpc_requests_without_key_when_model_control_is_none(plain_server, region) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(plain_server.grpc_url)
    good = {GRPC_KEY: plain_server.admin_value}
    calls = [
        lambda h: client.register_system_shared_memory("stolen", f"/{region.name}", 64, headers=h),
        lambda h: client.update_log_settings({"log_verbose_level": 1}, headers=h),
        lambda h: client.update_trace_settings(settings={"trace_rate": "1"}, headers=h),
    ]
    try:
        for call in calls:
            for headers in ({}, {GRPC_KEY: "wrong"}):
                with pytest.raises(InferenceServerException, match="restricted"):
                    call(headers)
        assert not client.get_system_shared_memory_status(headers=good, as_json=True).get("regions")
        for call in calls:
            call(good)
        assert "stolen" in client.get_system_shared_memory_status(headers=good, as_json=True)["regions"]
        client.unregister_system_shared_memory("stolen", headers=good)
        client.update_log_settings({"log_verbose_level": 0}, headers=good)
    finally:
        client.close()


@pytest.mark.server
def test_foreground_serve_records_private_state_for_admin_headers_when_running(tmp_path: Path) -> None:
    (tmp_path / "model_repository").mkdir()
    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen([TRITONKIT, "serve", "--runtime", "embedded", "--http-port", str(ports[0]),
                             "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    run_dir = run_dir_for(tmp_path / "model_repository")
    state = run_dir / "server.json"
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("serving"):
                break
        assert state.is_file() and state.stat().st_mode & 0o777 == 0o600
        headers = admin_headers_for(f"127.0.0.1:{ports[0]}", run_dir)
        assert headers == admin_headers_for(f"localhost:{ports[1]}", run_dir) and headers[ADMIN_HEADER]
        assert admin_headers_for(f"127.0.0.1:{ports[2]}", run_dir) == {}
        assert http_get(f"http://127.0.0.1:{ports[0]}/v2/logging", headers=headers)[0] == 200
        assert http_get(f"http://127.0.0.1:{ports[0]}/v2/logging")[0] == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not state.exists()


# -- item 24: the python stub writes no __pycache__ into published versions -------------------------

@pytest.mark.server
def test_serving_python_models_writes_no_pycache_into_repository_when_models_load(
        tmp_path: Path, digits_build: dict[str, Path]) -> None:
    repo = tmp_path / "model_repository"
    shutil.copytree(digits_build["repository"], repo)
    write_slow_model(repo, "slow", sleep_ms=1)
    with EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                        log_path=tmp_path / "triton.log") as server:
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(server.http_url)
        inp = httpclient.InferInput("input", [1, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.float32))
        assert client.infer("slow", [inp]).as_numpy("logits").shape == (1, 10)
        client.close()
    python_models = [p for p in repo.rglob("model.py")]
    assert len(python_models) >= 2  # the digits preprocessing model and the slow model
    assert not [p for p in repo.rglob("__pycache__")], "the python stub wrote bytecode into the repository"
    assert not [p for p in repo.rglob("*.pyc")]


# -- found on the way: the stub imported modules from the folder `tritonkit serve` ran in ------------

@pytest.mark.server
def test_python_models_import_nothing_from_serve_folder_when_it_holds_a_shadowing_module(tmp_path: Path) -> None:
    write_slow_model(tmp_path / "model_repository", "slow", sleep_ms=1)
    marker = tmp_path / "PWNED"
    (tmp_path / "json.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise ImportError('shadowed')\n")
    ports = [str(free_port()) for _ in range(3)]
    started = run_tritonkit(["serve", "--runtime", "embedded", "--detach", "--http-port", ports[0],
                             "--grpc-port", ports[1], "--metrics-port", ports[2]], tmp_path, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        status = json.loads(run_tritonkit(["serve", "status", "--json"], tmp_path).stdout)
        assert status["models"][0]["state"] == "READY"
    finally:
        stopped = run_tritonkit(["serve", "stop"], tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not marker.exists(), "a python model imported json.py from the folder serve ran in"


# -- item 25: clear messages ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "file"])
def test_serve_says_what_the_repository_path_is_when_it_is_not_a_folder(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "repo"
    os.mkfifo(path) if kind == "fifo" else path.write_text("x")
    line = one_error_line(run_tritonkit(["serve", "--runtime", "embedded", "--repository", str(path)], tmp_path,
                                timeout=30))
    assert f"is {'a FIFO' if kind == 'fifo' else 'a file'}, not a folder" in line and "does not exist" not in line
