"""Security defaults of servers started by tritonkit: loopback only, no model control unless asked,
the admin APIs (shared memory, logging, trace, model repository) behind a per-server header, and no
secret on any command line (more attacks in test_security_serve.py)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.reliability.conftest import write_slow_model
from tests.reliability.loadgen import tree_pids
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port

pytestmark = pytest.mark.server


def non_loopback_ipv4() -> str | None:
    """This machine's outward IPv4 address (UDP connect sends nothing), or one from ``ip -4 addr``."""
    for target in ("10.255.255.255", "192.0.2.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((target, 1))
                addr = s.getsockname()[0]
            except OSError:
                continue
            if not addr.startswith("127.") and addr != "0.0.0.0":
                return addr
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            addr = parts[parts.index("inet") + 1].split("/")[0]
            if not addr.startswith("127."):
                return addr
    return None


def _post_index(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"http://{url}/v2/repository/index", data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _grpc_index_error(url: str, headers: dict[str, str]) -> str | None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url)
    try:
        client.get_model_repository_index(headers=headers, client_timeout=5)
        return None
    except InferenceServerException as exc:
        return f"{exc.status()}: {exc.message()}"
    finally:
        client.close()


@pytest.fixture(scope="module")
def poll_server(tmp_path_factory: pytest.TempPathFactory):
    repo = tmp_path_factory.mktemp("sec") / "repo"
    write_slow_model(repo, "slow", sleep_ms=1)
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            model_control="poll", poll_secs=1, log_path=repo.parent / "triton.log")
    server.start(timeout=180)
    yield server
    server.stop()


def test_server_refuses_connections_on_non_loopback_address_when_started_by_tritonkit(poll_server) -> None:
    addr = non_loopback_ipv4()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect to")
    for port in (poll_server.http_port, poll_server.grpc_port, poll_server.metrics_port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            assert s.connect_ex((addr, port)) != 0, f"port {port} answers on {addr}; it must bind 127.0.0.1 only"
        # The metrics service may start a moment after readiness: the same port must answer on loopback.
        deadline = time.monotonic() + 10
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(3)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, f"port {port} does not answer on loopback"
            time.sleep(0.2)


def test_model_control_is_none_when_not_asked(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    cmd = server.command()
    assert "--model-control-mode=none" in cmd
    assert not any("poll" in a or "load-model" in a for a in cmd)
    assert all(f"--{k}-address=127.0.0.1" in cmd for k in ("http", "grpc", "metrics"))
    # The admin APIs stay restricted without model control; the flag holds only the placeholder.
    restricted = [a for a in cmd if "restricted" in a]
    assert len(restricted) == 2 and all(a.endswith(":tritonkit-admin-key=@TRITONKIT_ADMIN_KEY@") for a in restricted)
    assert server.admin_value not in " ".join(cmd)


def test_repository_api_refuses_requests_without_admin_header_when_model_control_is_poll(poll_server) -> None:
    assert _post_index(poll_server.http_url, {}) in (400, 401, 403)
    assert _post_index(poll_server.http_url, {"tritonkit-admin-key": "wrong"}) in (400, 401, 403)
    assert _post_index(poll_server.http_url, poll_server.admin_headers) == 200
    assert _grpc_index_error(poll_server.grpc_url, {}) is not None
    # gRPC metadata keys carry Triton's prefix: 'triton-grpc-protocol-<header>'.
    grpc_headers = {f"triton-grpc-protocol-{k}": v for k, v in poll_server.admin_headers.items()}
    assert _grpc_index_error(poll_server.grpc_url, grpc_headers) is None


def test_no_process_command_line_carries_admin_key_when_model_control_is_on(poll_server) -> None:
    key = poll_server.admin_value.encode()
    assert key
    pids = tree_pids(poll_server.pid)
    assert len(pids) >= 2, "expected tritonserver and at least one python stub"
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert key not in cmdline, f"pid {pid} shows the admin key on its command line"
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert key not in environ, f"pid {pid} carries the admin key in its environment"
        if pid != poll_server.pid:  # the stubs inherit neither the key variable nor the preload library
            assert b"LD_PRELOAD=" not in environ and b"TRITONKIT_ADMIN_KEY=" not in environ
    # The key still works after its argv copy was blanked: the server parsed it before.
    assert _post_index(poll_server.http_url, poll_server.admin_headers) == 200
