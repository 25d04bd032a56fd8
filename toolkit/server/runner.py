"""What ``tritonkit serve`` does, as functions: pick a runtime, run in the foreground or detached,
report status, stop.

A detached server leaves its state in a run folder (``.tritonkit/serve/`` by default):
``server.pid``, ``server.log`` and ``server.json`` (URLs, runtime, repository and, for model
control, the admin header; the file is private to the user).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ServerError, UsageError
from toolkit.server.embedded import ADMIN_HEADER, EmbeddedServer, http_get

RUNTIMES = ("auto", "docker", "embedded")
DEFAULT_RUN_DIR = Path(".tritonkit") / "serve"


@dataclass
class ServeOptions:
    repository: str = "model_repository"
    runtime: str = "auto"
    image: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_control: str = "none"
    poll_secs: int = 2
    timeout: float = 120


def choose_runtime(runtime: str) -> str:
    """``auto`` means the container when a Docker engine answers and a GPU is visible."""
    if runtime not in RUNTIMES:
        raise UsageError(f"runtime {runtime!r} is unknown; use one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    from toolkit.server.docker import docker_available, gpu_visible

    return "docker" if gpu_visible() and docker_available() else "embedded"


def make_server(opts: ServeOptions, log_path: Path | None = None) -> EmbeddedServer:
    """A server for ``opts`` (not started); a missing repository is refused in one line."""
    repo = Path(opts.repository)
    if not repo.is_dir():
        raise ServerError(
            f"model repository {repo} does not exist; create one with `tritonkit repo` or pass --repository"
        )
    common: dict[str, Any] = dict(
        host=opts.host, http_port=opts.http_port, grpc_port=opts.grpc_port, metrics_port=opts.metrics_port,
        model_control=opts.model_control, poll_secs=opts.poll_secs, log_path=log_path,
    )
    if choose_runtime(opts.runtime) == "docker":
        from toolkit.server.docker import DockerServer

        return DockerServer(repo, image=opts.image, **common)
    return EmbeddedServer(repo, **common)


def serve_foreground(opts: ServeOptions, echo: Any = print) -> None:
    """Start, print the URLs, serve until Ctrl-C or SIGTERM, then stop gracefully."""
    server = make_server(opts)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start(timeout=opts.timeout)
        _echo_ready(server, echo)
        echo("serving; press Ctrl-C to stop")
        try:
            while not stop.wait(0.5):
                if not server.is_running():
                    raise ServerError(f"Triton exited unexpectedly; see its log {server.log_path}")
        except KeyboardInterrupt:
            pass
        echo("stopping")
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _echo_ready(server: EmbeddedServer, echo: Any) -> None:
    echo(f"ready in {server.ready_seconds:.1f} s ({server.kind}, pid {server.pid})")
    echo(f"  http:    {server.http_url}")
    echo(f"  grpc:    {server.grpc_url}")
    echo(f"  metrics: {server.metrics_url}")
    echo(f"  log:     {server.log_path}")


def _state_path(run_dir: Path) -> Path:
    return run_dir / "server.json"


def read_state(run_dir: Path = DEFAULT_RUN_DIR) -> dict[str, Any] | None:
    try:
        return json.loads(_state_path(run_dir).read_text())
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not a running server.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int, state: dict[str, Any]) -> bool:
    """The pid is still the server we started (not a reused pid)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True
    return ("tritonserver" in cmdline) or (state.get("runtime") == "docker" and "docker" in cmdline)


def serve_detached(opts: ServeOptions, run_dir: Path = DEFAULT_RUN_DIR, echo: Any = print) -> dict[str, Any]:
    """Start, wait for readiness, record the server in ``run_dir`` and return its state."""
    state = read_state(run_dir)
    if state and _is_our_server(int(state["pid"]), state):
        raise ServerError(
            f"a server is already running (pid {state['pid']}, http {state['http_url']}); "
            "run `tritonkit serve stop` first"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    server = make_server(opts, log_path=(run_dir / "server.log").resolve())
    server.start(timeout=opts.timeout)
    state = {
        "pid": server.pid,
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
    _write_atomic(_state_path(run_dir), json.dumps(state, indent=2))
    _write_atomic(run_dir / "server.pid", f"{server.pid}\n", 0o644)
    _echo_ready(server, echo)
    # Leave the process running: forget it without stopping it.
    server._proc = None
    echo(f"detached; stop with `tritonkit serve stop` (state in {run_dir})")
    return state


def server_status(run_dir: Path = DEFAULT_RUN_DIR) -> dict[str, Any]:
    """running / ready / URLs / models of the detached server recorded in ``run_dir``."""
    state = read_state(run_dir)
    if not state:
        return {"running": False, "ready": False, "run_dir": str(run_dir)}
    running = _is_our_server(int(state["pid"]), state)
    ready = running and http_get(f"http://{state['http_url']}/v2/health/ready")[0] == 200
    models: list[dict[str, Any]] = []
    if ready:
        models = _repository_index(state["http_url"], state.get("admin_headers") or {})
    return {**{k: v for k, v in state.items() if k != "admin_headers"},
            "running": running, "ready": ready, "models": models, "run_dir": str(run_dir)}


def _repository_index(http_url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    import urllib.request

    req = urllib.request.Request(f"http://{http_url}/v2/repository/index", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - local URL only
            return [
                {"name": m.get("name"), "version": m.get("version"), "state": m.get("state"),
                 "reason": m.get("reason", "")}
                for m in json.loads(r.read())
            ]
    except (OSError, ValueError):
        return []


def load_detached(model: str, run_dir: Path = DEFAULT_RUN_DIR, timeout: float = 120) -> dict[str, Any]:
    """Ask the detached server (model control ``explicit``) to (re)load ``model``.

    Triton keeps the versions it serves when a load fails, so a broken new version leaves the old
    one answering; the error names the reason Triton gave. Returns the model's index entries.
    """
    import urllib.error
    import urllib.request

    state = read_state(run_dir)
    if not state or not _is_our_server(int(state["pid"]), state):
        raise ServerError(f"no detached server is recorded in {run_dir}; start one with "
                          "`tritonkit serve --model-control explicit --detach`")
    if state.get("model_control") != "explicit":
        raise ServerError(f"the server in {run_dir} runs with model control {state.get('model_control')!r}; "
                          "--load needs `tritonkit serve --model-control explicit` (poll reloads by itself)")
    headers = {"Content-Type": "application/json", **(state.get("admin_headers") or {})}
    req = urllib.request.Request(f"http://{state['http_url']}/v2/repository/models/{model}/load", data=b"{}",
                                 method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout):  # noqa: S310 - local URL only
            pass
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", "")
        except ValueError:
            reason = exc.reason
        serving = [m for m in _repository_index(state["http_url"], state.get("admin_headers") or {})
                   if m["name"] == model and m["state"] == "READY"]
        kept = f"; still serving version {serving[0]['version']}" if serving else ""
        raise ServerError(f"model {model!r} was not loaded: {' '.join(str(reason).split())}{kept}") from None
    except OSError as exc:
        raise ServerError(f"the server at {state['http_url']} did not answer the load request ({exc})") from None
    return [m for m in _repository_index(state["http_url"], state.get("admin_headers") or {}) if m["name"] == model]


def stop_detached(run_dir: Path = DEFAULT_RUN_DIR, timeout: float = 30) -> bool:
    """Stop the detached server recorded in ``run_dir``; False when none was running."""
    state = read_state(run_dir)
    if not state:
        return False
    pid = int(state["pid"])
    was_running = _is_our_server(pid, state)
    if was_running:
        if state.get("runtime") == "docker" and state.get("container"):
            import subprocess

            subprocess.run(["docker", "stop", "-t", str(int(timeout)), state["container"]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        deadline = time.monotonic() + timeout
        for sig, share in ((signal.SIGINT, 0.5), (signal.SIGTERM, 1.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            until = time.monotonic() + (deadline - time.monotonic()) * share
            while _alive(pid) and time.monotonic() < until:
                time.sleep(0.1)
            if not _alive(pid):
                break
        try:
            os.killpg(pid, signal.SIGKILL)  # the server's own session: leftovers and stubs
        except (ProcessLookupError, PermissionError):
            pass
    for name in ("server.json", "server.pid"):
        (run_dir / name).unlink(missing_ok=True)
    return was_running


__all__ = [
    "ADMIN_HEADER", "DEFAULT_RUN_DIR", "RUNTIMES", "ServeOptions", "choose_runtime", "make_server",
    "read_state", "serve_detached", "serve_foreground", "server_status", "stop_detached",
]
