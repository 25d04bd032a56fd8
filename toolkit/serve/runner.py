"""What ``tritonkit serve`` does, as functions: pick a runtime, run in the foreground or detached,
report status, stop.

A running server (detached, or in the foreground until it stops) leaves its state in a run folder
(per user and repository: :func:`toolkit.serve.state.run_dir_for`; ``server.log`` too when detached).
The record is written and read in :mod:`toolkit.serve.state`; ``serve stop`` trusts nothing in it:
the file must be a regular file of this user, and the pid must still be that same process before
anything is signalled.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from contract.errors import ServerError, UsageError
from toolkit.gpus import gpu_visible
from toolkit.serve.container import (
    DockerServer,
    docker_available,
    remove_orphans,
    require_docker,
    stop_recorded_container,
)
from toolkit.serve.embedded import ADMIN_HEADER, EmbeddedServer, check_ports, check_repository_arg, http_get
from toolkit.serve.install import argv_key_library
from toolkit.serve.interrupts import interrupts_raise, signals_held
from toolkit.serve.options import ServeOptions, check_serve_options
from toolkit.serve.procs import PidHandle, session_handles
from toolkit.serve.state import (
    admin_headers_for,
    find_run_dir,
    forget_state,
    load_state,
    make_private_dir,
    read_state,
    record_state,
    recorded_server,
    refuse_if_recorded_running,
    remove_download_dir,
    run_dir_for,
    state_path,
    sweep_downloads,
)

RUNTIMES = ("auto", "docker", "embedded")


def choose_runtime(runtime: str) -> str:
    """``auto`` means the container when a Docker engine answers and a GPU is visible."""
    if runtime not in RUNTIMES:
        raise UsageError(f"runtime {runtime!r} is unknown; use one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    return "docker" if gpu_visible() and docker_available() else "embedded"


def make_server(opts: ServeOptions, log_path: Path | None = None, warn: Any = None,
                download_root: Path | None = None) -> EmbeddedServer:
    """A server for ``opts`` (not started): the options are checked first (one line each, see
    :func:`~toolkit.serve.options.check_serve_options`; warnings go to ``warn``), a missing repository or a
    malformed object-storage URL is refused in one line. A remote repository is downloaded by Triton under
    ``download_root`` (the run folder); progress lines while it loads go to ``warn`` too."""
    remote = check_repository_arg(opts.repository)
    repo: Path | str = opts.repository if remote is not None else Path(opts.repository)
    runtime = choose_runtime(opts.runtime)
    engine = None
    if runtime == "docker":
        engine = require_docker()
        remove_orphans(engine)  # a crashed client's container may still hold the ports checked below
    else:
        argv_key_library()  # no C compiler: refused here, before any warning (built once, then found)
    warnings = check_serve_options(opts, runtime)
    check_ports(opts.host, {"http": opts.http_port, "grpc": opts.grpc_port, "metrics": opts.metrics_port})
    for line in warnings:  # after every refusal: a refused start warns of nothing
        (warn or print)(f"warning: {line}")
    common: dict[str, Any] = dict(
        host=opts.host, http_port=opts.http_port, grpc_port=opts.grpc_port, metrics_port=opts.metrics_port,
        model_control=opts.model_control, poll_secs=opts.poll_secs, log_path=log_path,
        strict_config=opts.strict_config, download_root=download_root, progress=warn or print,
    )
    if runtime == "docker":
        return DockerServer(repo, image=opts.image, engine=engine, **common)
    return EmbeddedServer(repo, **common)


def serve_foreground(opts: ServeOptions, echo: Any = print, run_dir: Path | None = None, warn: Any = None) -> None:
    """Start, print the URLs, serve until Ctrl-C or SIGTERM, then stop gracefully.

    While it serves, its state (with the admin key) is recorded privately in ``run_dir`` like a detached
    server's, so `tritonkit predict --shared-memory on` and `serve status` find it; removed on exit.
    ``run_dir`` defaults to the repository's (:func:`~toolkit.serve.state.run_dir_for`).
    """
    run_dir = run_dir or run_dir_for(opts.repository)
    refuse_if_recorded_running(run_dir)
    # The log goes beside the record (one per repository, replaced next time), never into the temp folder.
    server = make_server(opts, log_path=(run_dir / "server.log").resolve(), warn=warn, download_root=run_dir)
    make_private_dir(run_dir)
    sweep_downloads(run_dir)
    stop = threading.Event()
    # SIGHUP (the terminal closed) stops it too: tritonserver has its own session and would outlive tritonkit.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGHUP)}
    recorded: dict[str, Any] | None = None
    try:
        server.start(timeout=opts.effective_timeout())
        recorded = record_state(server, run_dir)
        _echo_ready(server, echo)
        echo("serving; press Ctrl-C to stop")
        try:
            while not stop.wait(0.5):
                if not server.is_running():
                    if _stopped_by_command(run_dir):
                        echo("stopped by `tritonkit serve stop`")
                        return
                    raise ServerError(f"Triton exited unexpectedly; see its log {server.log_path}")
        except KeyboardInterrupt:
            pass
        echo("stopping")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if recorded is not None:
            forget_state(run_dir, recorded["pid"])


def _stopped_by_command(run_dir: Path, grace: float = 3.0) -> bool:
    """`tritonkit serve stop` removes the state once the server is gone: wait briefly for that."""
    until = time.monotonic() + grace
    while state_path(run_dir).exists():
        if time.monotonic() >= until:
            return False
        time.sleep(0.1)
    return True


def _echo_ready(server: EmbeddedServer, echo: Any) -> None:
    echo(f"ready in {server.ready_seconds:.1f} s ({server.kind}, pid {server.pid})")
    echo(f"  http:    {server.http_url}")
    echo(f"  grpc:    {server.grpc_url}")
    echo(f"  metrics: {server.metrics_url}")
    echo(f"  log:     {server.log_path}")


def serve_detached(opts: ServeOptions, run_dir: Path | None = None, echo: Any = print,
                   warn: Any = None) -> dict[str, Any]:
    """Start, wait for readiness, record the server in ``run_dir`` (the repository's by default) and return
    its state.

    Until the server is recorded and let go, SIGINT, SIGTERM and SIGHUP stop it and raise
    :class:`~toolkit.serve.interrupts.StartInterrupted`: nothing keeps running unrecorded.
    """
    run_dir = run_dir or run_dir_for(opts.repository)
    refuse_if_recorded_running(run_dir)
    server = make_server(opts, log_path=(run_dir / "server.log").resolve(), warn=warn, download_root=run_dir)
    make_private_dir(run_dir)
    sweep_downloads(run_dir)
    with interrupts_raise():
        server.start(timeout=opts.effective_timeout())
        try:
            state = record_state(server, run_dir)
            _echo_ready(server, echo)
            server.detach()  # leave the process running
        except BaseException:
            with signals_held():  # a second signal must not cut the clean-up short
                pid = server.pid
                server.stop()
                forget_state(run_dir, pid)
            raise
    echo(f"detached; stop with `tritonkit serve stop` (state in {run_dir})")
    return state


def server_status(run_dir: Path) -> dict[str, Any]:
    """running / ready / URLs / models of the server recorded in ``run_dir``.

    Raises:
        ServerError: the state file is corrupt or foreign, or its pid is now another process.
    """
    state = load_state(run_dir)
    if not state:
        return {"running": False, "ready": False, "run_dir": str(run_dir)}
    handle = recorded_server(state, run_dir)
    running = handle is not None
    if handle is not None:
        handle.close()
    ready = running and http_get(f"http://{state['http_url']}/v2/health/ready")[0] == 200
    models: list[dict[str, Any]] = []
    if running:  # also while not ready: a version unloading after a switch makes strict readiness blink
        models = _repository_index(state["http_url"], state["admin_headers"])
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
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def load_detached(model: str, run_dir: Path | None = None, timeout: float = 120) -> dict[str, Any]:
    """Ask the detached server (model control ``explicit``) to (re)load ``model``.

    Triton keeps the versions it serves when a load fails, so a broken new version leaves the old
    one answering; the error names the reason Triton gave. Returns the model's index entries.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    run_dir = run_dir or find_run_dir()
    state = load_state(run_dir)
    handle = recorded_server(state, run_dir) if state else None
    if state is None or handle is None:
        raise ServerError(f"no detached server is recorded in {run_dir}; start one with "
                          "`tritonkit serve --model-control explicit --detach`")
    handle.close()
    if state.get("model_control") != "explicit":
        raise ServerError(f"the server in {run_dir} runs with model control {state.get('model_control')!r}; "
                          "--load needs `tritonkit serve --model-control explicit` (poll reloads by itself)")
    headers = {"Content-Type": "application/json", **state["admin_headers"]}
    name = urllib.parse.quote(model, safe="")
    req = urllib.request.Request(f"http://{state['http_url']}/v2/repository/models/{name}/load", data=b"{}",
                                 method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout):  # noqa: S310 - local URL only
            pass
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", "")
        except (ValueError, AttributeError):
            reason = exc.reason
        serving = [m for m in _repository_index(state["http_url"], state["admin_headers"])
                   if m["name"] == model and m["state"] == "READY"]
        kept = f"; still serving version {serving[0]['version']}" if serving else ""
        raise ServerError(f"model {model!r} was not loaded: {' '.join(str(reason).split())}{kept}") from None
    except OSError as exc:
        raise ServerError(f"the server at {state['http_url']} did not answer the load request ({exc})") from None
    return [m for m in _repository_index(state["http_url"], state["admin_headers"]) if m["name"] == model]


def _wait_exit(handle: PidHandle, until: float) -> bool:
    """Wait until the process exits or ``until`` (monotonic) passes; True when it exited."""
    while handle.alive():
        if time.monotonic() >= until:
            return False
        time.sleep(0.1)
    return True


def stop_detached(run_dir: Path, timeout: float = 30) -> bool:
    """Stop the server recorded in ``run_dir``; False when none was running (see :func:`stop_recorded`)."""
    return stop_recorded(run_dir, timeout) == "stopped"


def stop_recorded(run_dir: Path, timeout: float = 30) -> str:
    """Stop the server recorded in ``run_dir``: ``stopped``, ``exited`` (it had already exited; its state
    is removed) or ``none`` (nothing recorded).

    Signals reach only the recorded process (pid, start time and executable all match, through a
    pidfd) and the members of its own session (the python stubs), never a process group by number.

    Raises:
        ServerError: the state file is corrupt or foreign, or its pid is now another process; nothing
            is signalled then.
    """
    state = load_state(run_dir)
    if not state:
        return "none"
    handle = recorded_server(state, run_dir)
    if handle is None:
        if state.get("runtime") == "docker":  # its client is gone, its container may run on
            stop_recorded_container(state, timeout)
        remove_download_dir(run_dir, state.get("download_dir"))
        forget_state(run_dir)
        return "exited"
    with handle:
        # Its stubs: the other members of the session it leads (started with setsid), started after it.
        members = session_handles(state["pid"], started_since=state["start_time"])
        try:
            if state.get("runtime") == "docker":  # Triton drains in-flight requests; the container is removed
                stop_recorded_container(state, timeout)
            deadline = time.monotonic() + timeout
            for sig, share in ((signal.SIGINT, 0.5), (signal.SIGTERM, 1.0)):
                if not handle.send(sig):
                    break
                if _wait_exit(handle, time.monotonic() + (deadline - time.monotonic()) * share):
                    break
            if handle.alive():
                handle.send(signal.SIGKILL)
                _wait_exit(handle, time.monotonic() + 10)
            for member in members:  # leftovers of a killed server
                member.send(signal.SIGKILL)
        finally:
            for member in members:
                member.close()
    remove_download_dir(run_dir, state.get("download_dir"))
    forget_state(run_dir)
    return "stopped"


__all__ = [
    "ADMIN_HEADER", "RUNTIMES", "ServeOptions", "admin_headers_for", "choose_runtime",
    "load_state", "make_server", "read_state", "serve_detached", "serve_foreground", "server_status",
    "stop_detached", "stop_recorded",
]
