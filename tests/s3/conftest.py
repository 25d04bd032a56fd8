"""The S3 tests' server: one moto server per test session (worker), its dummy credentials in the environment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.objectstore import CREDENTIALS, MotoServer, moto_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The server, with its credentials set for this test (and the commands it runs)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def bucket(s3: MotoServer) -> str:
    """A fresh, empty bucket for this test."""
    return s3.make_bucket(f"tk-{uuid.uuid4().hex[:12]}")
