"""Issue 15 (a newcomer's day), items 5, 6 and 10 on `tritonkit serve`: the server is recorded per user and
repository and found from any folder; every interruption of start-up cleans up; bad options are refused
in one line before anything starts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.serve.procs import identity_of
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
