"""A real S3-compatible server for tests and benchmarks: moto's server on a free loopback port.

It runs as its own process (``moto_server``), so tritonserver, boto3 and tritonkit's commands all talk to it
over HTTP as they would to any S3 endpoint; nothing leaves the machine. Credentials are moto's dummy
ones and travel only in the environment, as tritonkit requires of real ones.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.serve.ports import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret-0123456789",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class MotoServer:
    """One running moto server: ``url(bucket, path)`` spells a repository URL the way Triton reads it."""

    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=lambda: dict(CREDENTIALS))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, bucket: str, path: str = "") -> str:
        return f"s3://127.0.0.1:{self.port}/{bucket}" + (f"/{path.strip('/')}" if path.strip("/") else "")

    def client(self):  # boto3 S3 client on this server (for tests to look behind tritonkit's back)
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                            region_name=self.env["AWS_DEFAULT_REGION"])

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@contextmanager
def moto_server(log: Path | None = None, timeout: float = 60) -> Iterator[MotoServer]:
    """Start ``moto_server`` on 127.0.0.1 (a free port), yield it, stop it (by its own PID)."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out,
                               env={**os.environ, **CREDENTIALS})
    try:
        _wait_listening(port, process, timeout)
        yield MotoServer(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()
