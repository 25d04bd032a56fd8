"""Free TCP ports and in-use checks, so a server refuses a taken port with one clear line."""

from __future__ import annotations

import os
import socket
from pathlib import Path


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


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open (empty when it is gone or unreadable)."""
    out: set[int] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for n in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]") and target[8:-1].isdigit():
            out.add(int(target[8:-1]))
    return out


def listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` itself listens on, read from ``/proc`` (IPv4 and IPv6).

    Why: a port that answers proves nothing about who answers; another process can take a port
    between the free-port check and the server's own bind, and its health endpoint would then be
    read as ours.
    """
    inodes = _socket_inodes(pid)
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text(errors="replace").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            # sl local_address rem_address st ... inode: st 0A is LISTEN.
            if len(f) > 9 and f[3] == "0A" and f[9].isdigit() and int(f[9]) in inodes:
                try:
                    ports.add(int(f[1].rsplit(":", 1)[1], 16))
                except ValueError:
                    continue
    return ports
