"""Issue 15 (a newcomer's day), items 5, 6 and 10 on `tritonkit serve`: the server is recorded per user and
repository and found from any folder; every interruption of start-up cleans up; bad options are refused
in one line before anything starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.helpers import TRITONKIT, one_error_line, run_tritonkit
from toolkit.serve.ports import free_port
from toolkit.serve.procs import ProcessIdentity, identity_of, session_members
from toolkit.serve.state import make_private_dir, recorded_url, run_dir_for, state_path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this user to stand for a recorded server (its identity is real)."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def _record(repo: Path, pid: int, grpc_port: int) -> Path:
    ident = identity_of(pid)
    assert ident is not None
    run_dir = make_private_dir(run_dir_for(repo))
    state_path(run_dir).write_text(json.dumps({
        "pid": pid, "start_time": ident.start_time, "exe": ident.exe, "repository": str(repo.resolve()),
        "http_url": f"127.0.0.1:{grpc_port - 1}", "grpc_url": f"127.0.0.1:{grpc_port}", "admin_headers": {}}))
    return run_dir


def test_recorded_url_names_live_server_when_repository_or_only_server_is_recorded(
        tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "projects" / "repo_a"
    assert recorded_url() is None
    run_dir = _record(elsewhere, sleeper.pid, 18011)
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert recorded_url("grpc", str(elsewhere)) == "127.0.0.1:18011"
    assert recorded_url("http", str(elsewhere)) == "127.0.0.1:18010"
    # Not the default repository, but the only server recorded for this user: that one.
    assert recorded_url() == "127.0.0.1:18011"
    assert recorded_url("grpc", str(tmp_path / "other")) is None
    _record(tmp_path / "repo_b", sleeper.pid, 18021)
    assert recorded_url() is None  # two servers, neither on model_repository: no guess
    _record(tmp_path / "model_repository", sleeper.pid, 18031)
    assert recorded_url() == "127.0.0.1:18031"


# -- item 5: every way of interrupting start-up stops tritonserver ----------------------------------

SLOW_MODEL = """
import time


class TritonPythonModel:
    def initialize(self, args):
        time.sleep(120)  # keeps the server not ready while the test interrupts its start-up

    def execute(self, requests):
        return []
"""

SLOW_CONFIG = """name: "slow"
backend: "python"
max_batch_size: 0
input [{ name: "x" data_type: TYPE_FP32 dims: [1] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [1] }]
instance_group [{ kind: KIND_CPU count: 1 }]
"""


def _slow_repository(tmp_path: Path) -> Path:
    repo = tmp_path / "model_repository"
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "1" / "model.py").write_text(SLOW_MODEL)
    (repo / "slow" / "config.pbtxt").write_text(SLOW_CONFIG)
    return repo


def _own_tritonserver(repo: Path) -> int | None:
    """The pid of the tritonserver serving this test's own repository (its path is unique to the test)."""
    flag = f"--model-repository={repo.resolve()}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"tritonserver") and flag in argv:
                return int(entry.name)
    return None


def _wait(check, seconds: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    return None


@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_serve_detach_leaves_no_tritonserver_when_start_up_is_interrupted_by_signal(
        tmp_path: Path, sig: int, triton_home: Path) -> None:
    repo = _slow_repository(tmp_path)
    ports = [str(free_port()) for _ in range(3)]
    proc = subprocess.Popen([TRITONKIT, "serve", "--runtime", "embedded", "--detach", "--timeout", "300",
                             "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ours: list[ProcessIdentity] = []
    try:
        server = _wait(lambda: _own_tritonserver(repo), 120)
        assert server is not None, "tritonserver never started"
        # Its python stub (the slow model's, sleeping in initialize) is in the server's own session.
        members = _wait(lambda: [m for m in session_members(server) if m.pid != server], 120)
        assert members, "the slow model's stub never started"
        ours = [m for m in (identity_of(server), *members) if m is not None]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines() == [
        f"interrupted by {signal.Signals(sig).name} during start-up; the server was stopped and nothing was recorded"]
    survivors = [m for m in ours if identity_of(m.pid) == m]
    for m in survivors:  # never leave them behind, even when the test fails
        os.kill(m.pid, signal.SIGKILL)
    assert not survivors, f"left running: {survivors}"
    assert recorded_url("http", str(repo)) is None and not state_path(run_dir_for(repo)).exists()


# -- item 5: the recorded server is found from any folder, whatever its ports -----------------------

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.server
def test_predict_status_and_stop_reach_detached_server_when_run_from_another_folder_without_url(
        tmp_path: Path, digits_build: dict[str, Path]) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    shutil.copytree(digits_build["repository"], project / "model_repository")
    elsewhere.mkdir()
    ports = [str(free_port()) for _ in range(3)]
    started = run_tritonkit(["serve", "--runtime", "embedded", "--detach", "--http-port", ports[0], "--grpc-port",
                             ports[1], "--metrics-port", ports[2]], project, timeout=240)
    try:
        assert started.returncode == 0, started.stderr
        status = run_tritonkit(["serve", "status"], elsewhere)
        assert status.returncode == 0 and status.stdout.startswith("running"), status.stdout
        assert f"grpc:    127.0.0.1:{ports[1]}" in status.stdout
        assert str((project / "model_repository").resolve()) in status.stdout
        predicted = run_tritonkit(["predict", "digits", "--digits", "5", "--json"], elsewhere, timeout=240)
        assert predicted.returncode == 0, predicted.stderr
        summary = json.loads(predicted.stdout.splitlines()[-1])
        assert summary["url"] == f"127.0.0.1:{ports[1]}" and summary["n"] == 5
        # `make predict` (the setup step skipped: it is done) dials the recorded server too.
        made = subprocess.run(["make", "-s", "-o", ".venv/.installed", "predict"], cwd=ROOT, capture_output=True,
                              text=True, timeout=240)
        assert made.returncode == 0, made.stderr
        assert f"via grpc://127.0.0.1:{ports[1]}" in made.stdout
    finally:
        stopped = run_tritonkit(["serve", "stop"], elsewhere)
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped the server"), stopped.stdout
    assert recorded_url("grpc", str(project / "model_repository")) is None


# -- item 6: the docker runtime without Docker is a missing component (exit 3) ------------------------

def test_serve_docker_runtime_exits_3_in_one_line_when_docker_is_missing(tmp_path: Path) -> None:
    (tmp_path / "model_repository").mkdir()
    (tmp_path / "bin").mkdir()  # PATH without docker
    r = subprocess.run([TRITONKIT, "serve", "--runtime", "docker"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PATH": str(tmp_path / "bin")})
    line = one_error_line(r)
    assert r.returncode == 3 and "Docker is not installed" in line and "--runtime embedded" in line


# -- item 10: options Triton cannot honour are refused before starting; risky ones warned -------------

REFUSED_OPTIONS = {
    "http port 0": (["--http-port", "0"], "--http-port 0 is not a port"),
    "grpc port above 65535": (["--grpc-port", "70000"], "give a port from 1 to 65535"),
    "negative metrics port": (["--metrics-port", "-1"], "--metrics-port -1 is not a port"),
    "http and grpc on one port": (["--http-port", "18800", "--grpc-port", "18800"],
                                  "--http-port and --grpc-port are both 18800"),
    "ipv6 host": (["--host", "::1"], "cannot bind an IPv6 address"),
    "unresolvable host": (["--host", "nosuch.invalid"], "is not an IPv4 address"),
    "image with embedded runtime": (["--runtime", "embedded", "--image", "x:1"], "--image x:1 is for the docker"),
    "poll secs 0": (["--model-control", "poll", "--poll-secs", "0"], "--poll-secs 0 must be at least 1"),
    "poll secs negative": (["--model-control", "poll", "--poll-secs", "-5"], "--poll-secs -5 must be at least 1"),
}


@pytest.mark.parametrize("args,expected", REFUSED_OPTIONS.values(), ids=REFUSED_OPTIONS.keys())
@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
def test_serve_refuses_in_one_line_before_starting_when_option_cannot_work(
        tmp_path: Path, args: list[str], expected: str, detach: bool) -> None:
    (tmp_path / "model_repository").mkdir()
    r = run_tritonkit(["serve", *args, *(["--detach"] if detach else [])], tmp_path)
    line = one_error_line(r)
    assert r.returncode == 2 and expected in line, line
    assert not (tmp_path / "state-home").exists()  # nothing started, nothing recorded


@pytest.mark.server
def test_serve_warns_in_one_line_each_when_host_is_every_interface_and_repository_is_empty(
        tmp_path: Path, triton_home: Path) -> None:
    (tmp_path / "model_repository").mkdir()
    ports = [str(free_port("0.0.0.0")) for _ in range(3)]
    r = run_tritonkit(["serve", "--runtime", "embedded", "--detach", "--host", "0.0.0.0", "--http-port", ports[0],
                       "--grpc-port", ports[1], "--metrics-port", ports[2]], tmp_path, timeout=180)
    try:
        assert r.returncode == 0, r.stderr
        warnings = r.stderr.strip().splitlines()
        assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings), r.stderr
        assert "--host 0.0.0.0 exposes every endpoint" in warnings[0]
        assert "holds no model" in warnings[1] and "tritonkit repo add" in warnings[1]
    finally:
        run_tritonkit(["serve", "stop"], tmp_path)


@pytest.mark.server
def test_foreground_serve_leaves_no_log_in_temp_folder_when_stopped(tmp_path: Path, triton_home: Path) -> None:
    repo, temp = tmp_path / "model_repository", tmp_path / "tmp"
    repo.mkdir()
    temp.mkdir()
    ports = [str(free_port()) for _ in range(3)]
    proc = subprocess.Popen([TRITONKIT, "serve", "--runtime", "embedded", "--http-port", ports[0], "--grpc-port",
                             ports[1], "--metrics-port", ports[2]], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(temp), "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        shown = []
        for line in proc.stdout:
            if line.startswith("serving"):
                break
            shown.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    log = run_dir_for(repo) / "server.log"
    assert f"  log:     {log}\n" in shown and log.is_file()
    assert not list(temp.glob("tritonserver-*.log"))


def test_serve_status_lists_recorded_servers_when_several_run_and_none_serves_model_repository(
        tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    _record(tmp_path / "repo_a", sleeper.pid, 18011)
    _record(tmp_path / "repo_b", sleeper.pid, 18021)
    r = run_tritonkit(["serve", "status"], tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("not running"), r.stdout
    for name, port in (("repo_a", 18011), ("repo_b", 18021)):
        assert f"recorded: {(tmp_path / name).resolve()} (grpc 127.0.0.1:{port})" in r.stdout
    assert recorded_url() is None
