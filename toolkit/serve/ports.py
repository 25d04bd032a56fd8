"""Free TCP ports and in-use checks, so a server refuses a taken port with one clear line."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS says is free right now on ``host`` (tests start servers on these)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on, or holds, ``host:port``.

    Binding (not connecting) is the check Triton itself would fail on; SO_REUSEADDR matches how
    servers bind, so a port in TIME_WAIT after a clean stop counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return True
    return False
