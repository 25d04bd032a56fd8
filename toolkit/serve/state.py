"""The run folder's record of a running server: written private and atomically, read as untrusted.

A running server leaves ``server.json`` (URLs, runtime, repository, the admin header, and the
process identity: pid, start time, executable; mode 0600) and ``server.pid`` in its run folder.
The record steers signals, so reading it trusts nothing: a regular file of this user, a JSON
object of the expected fields, and a pid that is still that same process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from contract.errors import ServerError
from contract.fileio import NotRegularFileError, atomic_write_bytes, open_regular
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.procs import PidHandle, ProcessIdentity, identity_of

DEFAULT_RUN_DIR = Path(".tritonkit") / "serve"


def state_path(run_dir: Path) -> Path:
    """The state record in ``run_dir``."""
    return run_dir / "server.json"


STATE_LIMIT = 1 << 20


def refuse_state(path: Path, what: str) -> ServerError:
    """The error for a record that cannot be trusted: nothing is signalled, the user is told what to do."""
    return ServerError(f"{path} {what}, so nothing was signalled; check which server runs (`ps -C tritonserver`), "
                       f"stop it yourself, then delete {path}")


def load_state(run_dir: Path = DEFAULT_RUN_DIR) -> dict[str, Any] | None:
    """The server state recorded in ``run_dir``, checked field by field; None when none is recorded.

    The file steers signals, so it is read as untrusted input: a regular file (never a FIFO or a
    symlink), owned by this user, holding a JSON object whose pid is an integer above 1 with the start
    time and executable recorded when the server started.

    Raises:
        ServerError: the file exists but is not such a record (one line saying what and how to fix).
    """
    path = state_path(run_dir)
    try:
        fd = open_regular(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except NotRegularFileError as exc:
        kind = str(exc).rsplit(" is ", 1)[-1].split(",", 1)[0]
        raise refuse_state(path, f"is {kind}, not the regular file tritonkit writes") from None
    except OSError as exc:
        raise ServerError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from None
    with os.fdopen(fd, "rb") as fh:
        owner = os.fstat(fh.fileno()).st_uid
        data = fh.read(STATE_LIMIT + 1)
    if owner != os.geteuid():
        raise refuse_state(path, f"belongs to uid {owner}, not to you (uid {os.geteuid()}): someone else wrote it")
    if len(data) > STATE_LIMIT:
        raise refuse_state(path, f"is larger than {STATE_LIMIT} bytes")
    try:
        state = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise refuse_state(path, "is not valid JSON (corrupt, or not written by tritonkit)") from None
    if not isinstance(state, dict):
        raise refuse_state(path, f"holds a JSON {type(state).__name__}, not the object tritonkit writes")
    pid = state.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        raise refuse_state(path, f"records pid {pid!r}, which cannot be a server (a pid must be an integer above 1)")
    start, exe = state.get("start_time"), state.get("exe")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0 or not isinstance(exe, str) or not exe:
        raise refuse_state(path, f"records pid {pid} without its start time and executable (written by an older "
                            "tritonkit, or edited)")
    for key in ("http_url", "grpc_url"):
        if not isinstance(state.get(key), str):
            raise refuse_state(path, f"has no {key} string (corrupt, or not written by tritonkit)")
    headers = state.get("admin_headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise refuse_state(path, "has admin_headers that are not a string mapping (corrupt, or not written by "
                                  "tritonkit)")
    state["admin_headers"] = headers
    return state


def read_state(run_dir: Path = DEFAULT_RUN_DIR) -> dict[str, Any] | None:
    """Like :func:`load_state`, but None for a corrupt file too (for callers that only look)."""
    try:
        return load_state(run_dir)
    except ServerError:
        return None


def recorded_identity(state: dict[str, Any]) -> ProcessIdentity:
    """The process identity a (checked) state records."""
    return ProcessIdentity(pid=state["pid"], start_time=state["start_time"], exe=state["exe"])


def recorded_server(state: dict[str, Any], run_dir: Path) -> PidHandle | None:
    """A handle on the recorded server, None when it has exited.

    Raises:
        ServerError: the pid is alive but is another process (start time or executable differ).
    """
    want = recorded_identity(state)
    now = identity_of(want.pid)
    if now is None:
        return None
    if now != want:
        differs = "executable" if now.exe != want.exe else "start time"
        raise ServerError(
            f"pid {want.pid} recorded in {state_path(run_dir)} is now another process ({now.exe}; its "
            f"{differs} differs from the server's), so nothing was signalled; the recorded server is gone: "
            f"delete {state_path(run_dir)}"
        )
    try:
        return PidHandle(want)
    except ProcessLookupError:
        return None


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` atomically with ``mode`` set before the rename (the record holds the admin key)."""
    atomic_write_bytes(path, text.encode(), mode=mode)


def same_endpoint(a: str, b: str) -> bool:
    """Whether two ``[scheme://]host:port`` name the same endpoint (localhost = 127.0.0.1)."""
    def norm(url: str) -> str:
        url = url.strip().split("://", 1)[-1].rstrip("/")
        host, _, port = url.rpartition(":")
        return f"{'127.0.0.1' if host == 'localhost' else host}:{port}"

    return norm(a) == norm(b)


def admin_headers_for(url: str, run_dir: Path = DEFAULT_RUN_DIR) -> dict[str, str]:
    """The admin header (HTTP form, ``{"tritonkit-admin-key": ...}``) of the running server recorded in
    ``run_dir`` when ``url`` (``host:port``) is its HTTP or gRPC address; ``{}`` otherwise.

    Clients send it on the restricted APIs (shared memory, logging, trace, model repository). Over gRPC
    each key takes Triton's ``triton-grpc-protocol-`` prefix.
    """
    state = read_state(run_dir)
    if not state or not any(same_endpoint(url, state[k]) for k in ("http_url", "grpc_url")):
        return {}
    if identity_of(state["pid"]) != recorded_identity(state):
        return {}
    return dict(state["admin_headers"])


def state_record(server: EmbeddedServer) -> dict[str, Any]:
    """What a running server leaves in its run folder (the identity lets `serve stop` signal only it)."""
    assert server.pid is not None
    ident = identity_of(server.pid)
    if ident is None:
        raise ServerError(f"Triton (pid {server.pid}) exited right after start-up; see its log {server.log_path}")
    return {
        "pid": ident.pid,
        "start_time": ident.start_time,
        "exe": ident.exe,
        "runtime": server.kind,
        "repository": str(server.repository),
        "http_url": server.http_url,
        "grpc_url": server.grpc_url,
        "metrics_url": server.metrics_url,
        "log": str(server.log_path),
        "model_control": server.model_control,
        "admin_headers": server.admin_headers,
        "container": getattr(server, "container", None),
        "started": time.time(),
        "ready_seconds": server.ready_seconds,
    }


def refuse_if_recorded_running(run_dir: Path) -> None:
    """Refuse to start a second server from a folder whose recorded server still runs."""
    state = load_state(run_dir)
    if state is None:
        return
    handle = recorded_server(state, run_dir)
    if handle is not None:
        handle.close()
        raise ServerError(
            f"a server is already running from this folder (pid {state['pid']}, http {state['http_url']}); "
            "run `tritonkit serve stop` first"
        )


def record_state(server: EmbeddedServer, run_dir: Path) -> dict[str, Any]:
    """Write the server's state file (0600) and pid file into ``run_dir``; returns the state."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state = state_record(server)
    write_private(state_path(run_dir), json.dumps(state, indent=2))
    write_private(run_dir / "server.pid", f"{server.pid}\n", 0o644)
    return state


def forget_state(run_dir: Path, pid: int | None = None) -> None:
    """Remove the state files (only when they still record ``pid``, if given)."""
    if pid is not None:
        current = read_state(run_dir)
        if current is not None and current["pid"] != pid:
            return
    for name in ("server.json", "server.pid"):
        (run_dir / name).unlink(missing_ok=True)
