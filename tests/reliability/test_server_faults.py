"""Server faults under load: a killed tritonserver is reported as unavailable in one line within a
bounded time and ``tritonkit serve`` restarts on the same repository; a killed python stub fails
requests with a reported error (no hang) and Triton brings the model back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from contract.errors import TritonkitError
from tests.reliability.loadgen import stub_pids
from toolkit.client.predictor import Predictor, RetryPolicy
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port
from toolkit.serve.state import run_dir_for

pytestmark = pytest.mark.server
TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
X = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)


def _serve(cwd: Path, repo: Path, ports: dict[str, int], *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [TRITONKIT, "serve", "--detach", "--runtime", "embedded", "--repository", str(repo),
           "--http-port", str(ports["http"]), "--grpc-port", str(ports["grpc"]),
           "--metrics-port", str(ports["metrics"]), *extra]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=180)


def _load_until_error(url: str, timeout: float, stop: threading.Event) -> dict:
    """Predict in a loop until the first error; record its message and when it came."""
    out: dict = {"ok": 0}
    predictor = Predictor("digits", url=url, protocol="grpc", timeout=timeout,
                          retry=RetryPolicy(attempts=3, initial_s=0.1, max_s=0.5))
    try:
        while not stop.is_set():
            try:
                predictor.predict(X)
                out["ok"] += 1
            except TritonkitError as exc:
                out["error"], out["error_type"], out["at"] = str(exc), type(exc).__name__, time.monotonic()
                return out
            except Exception as exc:  # noqa: BLE001 - a raw exception is a failure of this test
                out["raw"] = f"{type(exc).__name__}: {exc}"
                return out
    finally:
        predictor.close()
    return out


def test_killed_server_is_reported_unavailable_in_one_line_and_serve_restarts_on_same_repository(
        tmp_path: Path, digits_build: dict) -> None:
    repo = tmp_path / "model_repository"
    shutil.copytree(digits_build["repository"], repo)
    ports = {k: free_port() for k in ("http", "grpc", "metrics")}
    state_file = run_dir_for(repo) / "server.json"
    started = _serve(tmp_path, repo, ports)
    assert started.returncode == 0, started.stderr
    pid = json.loads(state_file.read_text())["pid"]
    try:
        stop = threading.Event()
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(_load_until_error(f"127.0.0.1:{ports['grpc']}", 2.0, stop)))
        t.start()
        time.sleep(2.0)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        t.join(timeout=20)
        stop.set()
        assert not t.is_alive(), "the client hung after the server was killed"
        assert "raw" not in result, result.get("raw")
        assert result["ok"] > 0, "no request succeeded before the kill"
        message = result["error"]
        print(f"\nclient after server kill ({result['at'] - killed_at:.2f} s): {result['error_type']}: {message}")
        assert "\n" not in message
        assert "no Triton server answers" in message or "unavailable" in message
        assert result["at"] - killed_at < 10

        status = subprocess.run([TRITONKIT, "serve", "status"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
        assert "not running" in status.stdout, status.stdout
        os.killpg(pid, signal.SIGKILL)  # the killed server's orphaned stubs share its session

        restarted = _serve(tmp_path, repo, ports)
        assert restarted.returncode == 0, restarted.stderr
        pid = json.loads(state_file.read_text())["pid"]
        with Predictor("digits", url=f"127.0.0.1:{ports['grpc']}", protocol="grpc", timeout=5) as p:
            assert p.predict(X).shape == (4, 10)
    finally:
        subprocess.run([TRITONKIT, "serve", "stop", "--timeout", "10"], cwd=tmp_path, capture_output=True,
                       timeout=60)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_killed_python_stub_fails_requests_fast_with_reported_error_and_reload_recovers(
        tmp_path: Path, digits_build: dict) -> None:
    """Triton 2.51 does not restart a killed stub by itself: the model stays listed READY while
    every request fails at once with "Stub process '<instance>' is not healthy."; an unload + load
    through the (admin-restricted) repository API starts a new stub."""
    import urllib.request

    repo = tmp_path / "model_repository"
    repo.mkdir()
    shutil.copytree(digits_build["repository"] / "digits", repo / "digits")
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            model_control="explicit", log_path=tmp_path / "triton.log")
    with server:
        stubs = stub_pids(server.pid)
        assert len(stubs) == 1, f"expected one stub for digits, found {stubs}"
        with Predictor("digits", url=server.grpc_url, protocol="grpc", timeout=3,
                       retry=RetryPolicy(attempts=1)) as p:
            assert p.predict(X).shape == (4, 10)
            os.kill(stubs[0], signal.SIGKILL)
            killed_at = time.monotonic()
            errors: list[tuple[float, str]] = []
            while time.monotonic() - killed_at < 4:
                t0 = time.monotonic()
                try:
                    p.predict(X)
                except TritonkitError as exc:
                    errors.append((time.monotonic() - t0, str(exc)))
                assert time.monotonic() - t0 < 5, "a request hung on a dead stub"
                time.sleep(0.2)
            ready_while_broken = server.is_ready()
            # A load of an unchanged model is a no-op for Triton: unload, then load.
            for action in ("unload", "load"):
                req = urllib.request.Request(f"http://{server.http_url}/v2/repository/models/digits/{action}",
                                             data=b"{}", method="POST", headers=server.admin_headers)
                with urllib.request.urlopen(req, timeout=60) as r:
                    assert r.status == 200
            assert p.predict(X).shape == (4, 10)
        print(f"\nafter stub kill: {len(errors)} failed request(s), slowest {max(e[0] for e in errors):.2f} s, "
              f"first: {errors[0][1]}; server ready meanwhile: {ready_while_broken}; reload recovered")
        assert errors, "requests kept succeeding although the stub was killed"
        assert all("\n" not in e and "not healthy" in e for _, e in errors)
        assert max(e[0] for e in errors) < 5
        new = stub_pids(server.pid)
        assert new and stubs[0] not in new
