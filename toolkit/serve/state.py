"""The run folder's record of a running server: written private and atomically, read as untrusted.

A running server leaves ``server.json`` (URLs, runtime, repository, the admin header, and the
process identity: pid, start time, executable; mode 0600) and ``server.pid`` in its run folder.
The run folder belongs to the user and the repository, not to the working folder:
``$XDG_STATE_HOME/tritonkit/serve/<hash of the resolved repository path>/`` (``~/.local/state``
when unset; mode 0700), so every command finds the server from any folder; an object-storage
repository's run folder is named by a hash of its URL (as Triton reads it), and holds the folder Triton
downloads that repository's models into (``download-*``, removed when the server stops). The record steers
signals, so reading it trusts nothing: a regular file of this user, a JSON object of the expected
fields, and a pid that is still that same process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from contract.errors import ServerError
from contract.fileio import NotRegularFileError, atomic_write_bytes, open_regular
from toolkit.repository.options import DEFAULT_REPOSITORY
from toolkit.repository.remote import is_remote, parse_remote
from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.procs import PidHandle, ProcessIdentity, identity_of

URL_KEYS = {"grpc": "grpc_url", "http": "http_url"}


def state_root() -> Path:
    """This user's folder of recorded servers: ``$XDG_STATE_HOME/tritonkit/serve`` (an absolute
    ``XDG_STATE_HOME`` only, as the XDG spec says), else ``~/.local/state/tritonkit/serve``."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "tritonkit" / "serve"


def run_dir_for(repository: str | os.PathLike[str] | None = None) -> Path:
    """The run folder of the server serving ``repository`` (default ``model_repository``), the same
    from every working folder: named by a hash of the repository's resolved path, or of an object-storage
    URL as Triton reads it (so ``s3://h:1/b/p/`` and ``s3://h:1/b/p`` share one)."""
    if repository is not None and is_remote(repository):
        return state_root() / hashlib.sha256(parse_remote(str(repository)).triton_url().encode()).hexdigest()[:16]
    resolved = Path(repository if repository is not None else DEFAULT_REPOSITORY).resolve()
    return state_root() / hashlib.sha256(os.fsencode(resolved)).hexdigest()[:16]


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and its tritonkit parents) with mode 0700 and check it is a real folder of this
    user that nobody else can enter: the record in it holds the admin key and steers signals."""
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    for folder in (path.parent, path):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ServerError(f"{path} must be a folder of yours (it keeps the server's record and admin key), not a "
                          "symlink or another user's; remove it and start again")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def check_run_dir(run_dir: Path) -> None:
    """Refuse a run folder that is a symlink, another user's, or writable by others (a record there may be forged)."""
    try:
        info = os.lstat(run_dir)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise ServerError(f"{run_dir} is not a private folder of yours (a symlink, another user's, or writable by "
                          "others), so nothing in it was trusted or signalled; check who made it, then remove it")


def state_path(run_dir: Path) -> Path:
    """The state record in ``run_dir``."""
    return run_dir / "server.json"


STATE_LIMIT = 1 << 20


def refuse_state(path: Path, what: str) -> ServerError:
    """The error for a record that cannot be trusted: nothing is signalled, the user is told what to do."""
    return ServerError(f"{path} {what}, so nothing was signalled; check which server runs (`ps -C tritonserver`), "
                       f"stop it yourself, then delete {path}")


def load_state(run_dir: Path) -> dict[str, Any] | None:
    """The server state recorded in ``run_dir``, checked field by field; None when none is recorded.

    The file steers signals, so it is read as untrusted input: a regular file (never a FIFO or a
    symlink), owned by this user, holding a JSON object whose pid is an integer above 1 with the start
    time and executable recorded when the server started.

    Raises:
        ServerError: the file exists but is not such a record (one line saying what and how to fix).
    """
    check_run_dir(run_dir)
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


def read_state(run_dir: Path) -> dict[str, Any] | None:
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


def is_live(state: dict[str, Any]) -> bool:
    """Whether the (checked) state's process is still the recorded server."""
    return identity_of(state["pid"]) == recorded_identity(state)


def live_servers() -> list[tuple[Path, dict[str, Any]]]:
    """(run folder, state) of every live server recorded for this user; corrupt records are skipped."""
    try:
        entries = sorted(os.scandir(state_root()), key=lambda e: e.name)
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            state = read_state(Path(entry.path))
            if state is not None and is_live(state):
                found.append((Path(entry.path), state))
    return found


def find_run_dir(repository: str | os.PathLike[str] | None = None) -> Path:
    """The run folder to act on: ``repository``'s when given; else the default repository's when it
    records a live server (or a record that cannot be read, for the caller to refuse); else, when exactly
    one live server is recorded for this user, that one's."""
    run_dir = run_dir_for(repository)
    if repository is not None:
        return run_dir
    try:
        state = load_state(run_dir)
    except ServerError:
        return run_dir
    if state is not None and is_live(state):
        return run_dir
    live = live_servers()
    return live[0][0] if len(live) == 1 else run_dir


def recorded_url(protocol: str = "grpc", repository: str | None = None) -> str | None:
    """``host:port`` of the live server that tritonkit recorded for ``repository`` (see
    :func:`find_run_dir` for the default), for ``protocol`` (``grpc`` or ``http``); None when none runs.

    Commands call it when the user gives no ``--url``, so a server started with other ports (or from
    another folder) is the one they reach.
    """
    if protocol not in URL_KEYS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(URL_KEYS)}")
    state = read_state(find_run_dir(repository))
    if state is None or not is_live(state):
        return None
    return str(state[URL_KEYS[protocol]])


def admin_headers_for(url: str, run_dir: Path | None = None) -> dict[str, str]:
    """The admin header (HTTP form, ``{"tritonkit-admin-key": ...}``) of the live server recorded in
    ``run_dir`` (any recorded for this user when None) whose HTTP or gRPC address ``url`` is; ``{}`` otherwise.

    Clients send it on the restricted APIs (shared memory, logging, trace, model repository). Over gRPC
    each key takes Triton's ``triton-grpc-protocol-`` prefix.
    """
    if run_dir is None:
        candidates = [state for _, state in live_servers()]
    else:
        state = read_state(run_dir)
        candidates = [state] if state is not None and is_live(state) else []
    for state in candidates:
        if any(same_endpoint(url, state[k]) for k in URL_KEYS.values()):
            return dict(state["admin_headers"])
    return {}


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
        # The container runtime: the engine (program name, DOCKER_HOST) and the ID `serve stop` checks with it.
        "container_id": getattr(server, "container_id", None),
        "engine": getattr(server, "engine_record", None),
        # Where Triton downloads a remote repository (removed by `serve stop`); None for a folder.
        "download_dir": str(server.download_dir) if getattr(server, "download_dir", None) else None,
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
            f"a server is already running on repository {state.get('repository')} (pid {state['pid']}, http "
            f"{state['http_url']}); run `tritonkit serve stop --repository {state.get('repository')}` first"
        )


def record_state(server: EmbeddedServer, run_dir: Path) -> dict[str, Any]:
    """Write the server's state file (0600) and pid file into ``run_dir`` (0700); returns the state."""
    make_private_dir(run_dir)
    state = state_record(server)
    write_private(state_path(run_dir), json.dumps(state, indent=2))
    write_private(run_dir / "server.pid", f"{server.pid}\n", 0o644)
    return state


DOWNLOAD_PREFIX = "download-"


def remove_download_dir(run_dir: Path, recorded: object) -> None:
    """Remove the download folder a record names, only when it is a ``download-*`` folder directly in
    ``run_dir`` (a record is untrusted: it must not steer a removal elsewhere)."""
    if not isinstance(recorded, str) or not recorded:
        return
    path = Path(recorded)
    if path.parent != run_dir or not path.name.startswith(DOWNLOAD_PREFIX):
        return
    try:
        info = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
        shutil.rmtree(path, ignore_errors=True)


def sweep_downloads(run_dir: Path) -> None:
    """Remove download folders left in ``run_dir`` by servers that were killed with tritonkit.

    Called before a start, once no live server is recorded there; a folder is named after the tritonkit
    process that made it (``download-<pid>-*``), and one whose maker still runs (a start in progress) is kept.
    """
    try:
        entries = list(os.scandir(run_dir))
    except OSError:
        return
    for entry in entries:
        parts = entry.name.split("-")
        if not entry.name.startswith(DOWNLOAD_PREFIX) or len(parts) < 3 or not parts[1].isdigit():
            continue
        if identity_of(int(parts[1])) is not None:
            continue
        remove_download_dir(run_dir, entry.path)


def forget_state(run_dir: Path, pid: int | None = None) -> None:
    """Remove the state files (only when they still record ``pid``, if given)."""
    if pid is not None:
        current = read_state(run_dir)
        if current is not None and current["pid"] != pid:
            return
    for name in ("server.json", "server.pid"):
        (run_dir / name).unlink(missing_ok=True)
