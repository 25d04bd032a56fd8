"""Readiness counts only when the answering ports belong to the tritonserver tritonkit started."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from contract.errors import ServerError
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port, listening_ports

pytestmark = pytest.mark.server


def test_listening_ports_names_only_the_process_own_listeners() -> None:
    with socket.socket() as s, socket.socket(socket.AF_INET6) as s6, socket.socket() as unbound:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s6.bind(("::1", 0))
        s6.listen()
        unbound.bind(("127.0.0.1", 0))  # bound, not listening
        mine = listening_ports(__import__("os").getpid())
        assert s.getsockname()[1] in mine and s6.getsockname()[1] in mine
        assert unbound.getsockname()[1] not in mine
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert listening_ports(child.pid) == set()
    finally:
        child.kill()
        child.wait()
    assert listening_ports(2**22 + 7) == set()  # no such process


def test_a_ready_answer_from_a_port_another_process_holds_is_refused(digits_build: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """Another process listening on the metrics port (taken after the port check) is named, not read as ours."""
    server = EmbeddedServer(digits_build["repository"], http_port=free_port(), grpc_port=free_port(),
                            metrics_port=free_port(), log_path=tmp_path / "triton.log")
    with server:
        assert {server.http_port, server.grpc_port, server.metrics_port} <= listening_ports(server.pid)
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            server.metrics_port = squatter.getsockname()[1]  # as if tritonserver had lost this port to it
            with pytest.raises(ServerError, match=r"metrics port \d+ on 127.0.0.1 answers, but not from the "
                                                  r"tritonserver started here"):
                server._check_own_ports()
