"""`tritonkit serve` run as the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.conftest import TINY_SPEC, TinyCnn, write_model
from toolkit.serve.ports import free_port

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_serve_exits_nonzero_with_one_line_when_repository_is_missing(tmp_path: Path) -> None:
    r = _run(["serve", "--repository", "nope", "--runtime", "embedded"], tmp_path)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope" in lines[0] and "does not exist" in lines[0]


def test_serve_status_says_not_running_when_nothing_was_started(tmp_path: Path) -> None:
    r = _run(["serve", "status", "--json"], tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["running"] is False


@pytest.mark.server
def test_serve_detach_then_status_then_stop_when_repository_is_valid(tmp_path: Path, triton_home: Path) -> None:
    write_model(tmp_path / "model_repository", "tiny", TinyCnn(), TINY_SPEC)
    ports = [str(free_port()) for _ in range(3)]
    args = ["--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]]
    r = _run(["serve", "--runtime", "embedded", "--detach", *args], tmp_path)
    try:
        assert r.returncode == 0, r.stderr
        assert f"127.0.0.1:{ports[0]}" in r.stdout
        st = json.loads(_run(["serve", "status", "--json"], tmp_path).stdout)
        assert st["running"] and st["ready"]
        assert st["http_url"] == f"127.0.0.1:{ports[0]}"
        assert [(m["name"], m["state"]) for m in st["models"]] == [("tiny", "READY")]

        again = _run(["serve", "--runtime", "embedded", *args], tmp_path)
        assert again.returncode != 0
        assert again.stderr.strip().count("\n") == 0 and "already running" in again.stderr
        elsewhere = tmp_path / "elsewhere"
        (elsewhere / "model_repository").mkdir(parents=True)
        taken = _run(["serve", "--runtime", "embedded", *args], elsewhere)
        assert taken.returncode != 0
        assert taken.stderr.strip().count("\n") == 0 and "in use" in taken.stderr
    finally:
        stop = _run(["serve", "stop"], tmp_path)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    pid = st["pid"]
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    assert json.loads(_run(["serve", "status", "--json"], tmp_path).stdout)["running"] is False
