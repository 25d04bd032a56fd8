"""The run folder's server record (toolkit.serve.state) under attack (issue 12, items 2 and 18): hostile
state files make `serve stop` / `serve status` refuse in one line and signal nothing; a record of a
server that has exited is cleaned up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server.helpers import TRITONKIT, one_error_line, run_tritonkit
from toolkit.serve.procs import identity_of
from toolkit.serve.state import admin_headers_for, run_dir_for


def _run_dir(tmp_path: Path) -> Path:
    """The run folder `serve` run in ``tmp_path`` uses (its model_repository; XDG_STATE_HOME is the test's)."""
    return run_dir_for(tmp_path / "model_repository")


def _write_state(tmp_path: Path, content: str | bytes) -> Path:
    run_dir = _run_dir(tmp_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "server.json"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


HOSTILE_STATES = {
    "pid string": '{"pid": "abc"}',
    "pid bool": '{"pid": true}',
    "pid float": '{"pid": 12.5}',
    "list": "[1, 2]",
    "not json": "{pid: 12",
    "binary": b"\xff\xfe\x00garbage",
    "old format": '{"pid": 99999999, "http_url": "127.0.0.1:1", "grpc_url": "127.0.0.1:2"}',
}


@pytest.mark.parametrize("content", HOSTILE_STATES.values(), ids=HOSTILE_STATES.keys())
@pytest.mark.parametrize("command", ["stop", "status"])
def test_serve_command_refuses_in_one_line_when_state_file_is_corrupt(tmp_path: Path, command: str,
                                                                       content: str | bytes) -> None:
    path = _write_state(tmp_path, content)
    line = one_error_line(run_tritonkit(["serve", command], tmp_path))
    assert str(path) in line and "nothing was signalled" in line
    assert path.read_bytes() == (content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_serve_stop_refuses_in_one_line_when_state_file_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    run_dir = _run_dir(tmp_path)
    run_dir.mkdir(parents=True)
    path = run_dir / "server.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (tmp_path / "elsewhere.json").write_text('{"pid": 2}')
        path.symlink_to(tmp_path / "elsewhere.json")
    else:
        path.mkdir()
    for command in ("stop", "status"):
        line = one_error_line(run_tritonkit(["serve", command], tmp_path, timeout=30))
        assert {"fifo": "a FIFO", "symlink": "a symlink", "folder": "a folder"}[kind] in line
    assert os.path.lexists(path)


def test_serve_stop_refuses_and_signals_nothing_when_pid_is_an_unrelated_live_process(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "600"])
    try:
        ident = identity_of(victim.pid)
        assert ident is not None
        forged = [
            # Start time right, executable not: a pid reused by another program.
            {"pid": victim.pid, "start_time": ident.start_time, "exe": "/opt/tritonserver/bin/tritonserver"},
            # Executable right, start time not: the same program started again later.
            {"pid": victim.pid, "start_time": ident.start_time + 1, "exe": ident.exe},
        ]
        for state in forged:
            _write_state(tmp_path, json.dumps({**state, "http_url": "127.0.0.1:1", "grpc_url": "127.0.0.1:2",
                                               "admin_headers": {}}))
            for command in ("stop", "status"):
                line = one_error_line(run_tritonkit(["serve", command], tmp_path))
                assert f"pid {victim.pid}" in line and "now another process" in line and "nothing was signalled" in line
            assert victim.poll() is None, "serve stop signalled an unrelated process"
        assert admin_headers_for("127.0.0.1:1", _run_dir(tmp_path)) == {}
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("pid", [-1, 0, 1])
def test_serve_stop_signals_nothing_when_state_pid_is_minus_one_zero_or_init_inside_pid_namespace(
        tmp_path: Path, pid: int) -> None:
    """In a private PID namespace a regression can only hit the victim (or the namespace's own init,
    the shell) started there, never this machine."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not here")
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True,
                           timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"unshare --pid is not permitted here: {probe.stderr.strip()}")
    _write_state(tmp_path, json.dumps({"pid": pid, "start_time": 1, "exe": "/bin/sleep",
                                       "http_url": "127.0.0.1:1", "grpc_url": "127.0.0.1:2"}))
    script = (
        "sleep 600 & victim=$!\n"
        f"'{TRITONKIT}' serve stop 2>stop.err; echo \"rc=$?\"\n"
        "sleep 0.5\n"
        "if kill -0 $victim 2>/dev/null; then echo victim=alive; else echo victim=dead; fi\n"
        "kill -9 $victim\n"
    )
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert "rc=" in r.stdout, f"the namespace's shell did not survive `serve stop`: {r.stdout} {r.stderr}"
    assert "victim=alive" in r.stdout, r.stdout
    rc = int(r.stdout.split("rc=", 1)[1].split()[0])
    assert rc != 0
    err = (tmp_path / "stop.err").read_text().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and f"records pid {pid}," in err[0]




def test_serve_stop_says_nothing_runs_when_recorded_server_has_exited(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    path = _write_state(tmp_path, json.dumps({"pid": gone.pid, "start_time": 1, "exe": "/usr/bin/true",
                                              "http_url": "127.0.0.1:1", "grpc_url": "127.0.0.1:2"}))
    r = run_tritonkit(["serve", "stop"], tmp_path)
    assert r.returncode == 0 and f"pid {gone.pid}" in r.stdout and "had already exited" in r.stdout
    assert not path.exists()
    r = run_tritonkit(["serve", "stop"], tmp_path)
    assert r.returncode == 0 and "no server is recorded" in r.stdout
