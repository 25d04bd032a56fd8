"""Readiness counts only when the answering ports belong to the tritonserver tritonkit started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from contract.errors import ServerError
from toolkit.serve.embedded import check_own_ports
from toolkit.serve.ports import listening_ports

pytestmark = pytest.mark.server


def test_listening_ports_names_only_the_process_own_listeners() -> None:
    with socket.socket() as s, socket.socket(socket.AF_INET6) as s6, socket.socket() as unbound:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s6.bind(("::1", 0))
        s6.listen()
        unbound.bind(("127.0.0.1", 0))  # bound, not listening
        mine = listening_ports(os.getpid())
        assert s.getsockname()[1] in mine and s6.getsockname()[1] in mine
        assert unbound.getsockname()[1] not in mine
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert listening_ports(child.pid) == set()
    finally:
        child.kill()
        child.wait()
    assert listening_ports(2**22 + 7) == set()  # no such process


def test_a_port_another_process_holds_is_refused_as_not_ours(triton_server) -> None:  # noqa: ANN001
    """Another process listening on a port tritonserver should hold (taken after the port check) is named."""
    ours = {"http": triton_server.http_port, "grpc": triton_server.grpc_port, "metrics": triton_server.metrics_port}
    assert set(ours.values()) <= listening_ports(triton_server.pid)
    check_own_ports(triton_server.pid, "127.0.0.1", ours)  # the real server passes
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = {**ours, "metrics": squatter.getsockname()[1]}  # as if tritonserver had lost it to the squatter
        with pytest.raises(ServerError, match=rf"metrics port {taken['metrics']} on 127.0.0.1 answers, but not "
                                              r"from the tritonserver started here"):
            check_own_ports(triton_server.pid, "127.0.0.1", taken, settle_s=0.2)
