"""Shared fixtures: the default digits model built once per session, and one real Triton server.

The chain is the one ``make repo`` runs (train -> ONNX -> repository), in a temporary folder so
``make test`` needs nothing built beforehand.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# Started in the background of a non-interactive shell (`.ci/run &`, nohup), pytest inherits SIGINT ignored, and
# so would every command a test starts: Ctrl-C tests would then wait forever. A Python handler is reset to the
# default at exec, so the commands the tests start get Ctrl-C as a user's terminal gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def private_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test records servers in its own state folder (``XDG_STATE_HOME``, inherited by the commands it
    runs), so a server another test or the user started is never "the only one recorded", and a test
    never touches the user's own records."""
    home = tmp_path / "state-home"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoint, ONNX and repository of the default digits model (what ``make repo`` makes)."""
    from toolkit.pipeline import build_repository

    root = tmp_path_factory.mktemp("digits")
    result = build_repository(
        root / "model_repository", checkpoint=root / "digits.pt", onnx_path=root / "digits.onnx",
        log=lambda *_: None,
    )
    return {"root": root, "checkpoint": result.checkpoint, "onnx": result.onnx,
            "repository": root / "model_repository"}


@pytest.fixture(scope="session")
def digits_checkpoint(digits_build: dict[str, Path]) -> Path:
    return digits_build["checkpoint"]


@pytest.fixture(scope="session")
def digits_onnx(digits_build: dict[str, Path]) -> Path:
    return digits_build["onnx"]


@pytest.fixture(scope="session")
def triton_server(digits_build: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """One embedded Triton serving a copy of the digits repository on free loopback ports."""
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    repo = tmp_path_factory.mktemp("served") / "model_repository"
    shutil.copytree(digits_build["repository"], repo)
    server = EmbeddedServer(
        repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
        log_path=repo.parent / "triton.log",
    )
    server.start(timeout=180)
    yield server
    server.stop()


# Files that run for minutes go first: with `pytest -n N --dist loadfile` a file runs whole in one
# worker, and one started last would leave the others idle at the end of the run.
_LONGEST_FIRST = ("tests/repository/test_triton_agreement.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(_LONGEST_FIRST))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One real S3-compatible server (moto) per test session (worker), on a free loopback port."""
    from tests.objectstore import moto_server

    with moto_server(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch: pytest.MonkeyPatch):
    """The S3 server, with its dummy credentials set for this test (and the commands it runs)."""
    from tests.objectstore import CREDENTIALS

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def bucket(s3) -> str:
    """A fresh, empty bucket for this test."""
    import uuid

    return s3.make_bucket(f"tk-{uuid.uuid4().hex[:12]}")
