"""Serving a repository straight from object storage (moto's S3 server on loopback).

One detached ``tritonkit serve --repository s3://...`` is shared by the module: its answers must equal
those of the same repository served from a folder, its credentials must stay in the environment (not in
any process's argv, nor in the run record), and Triton's downloads must live in the run folder and go
when the server stops. The refusals (a malformed URL, a missing bucket or prefix, no credentials) are
each one line from the real command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.objectstore import CREDENTIALS, MotoServer
from tests.server.helpers import TRITONKIT
from toolkit.serve.ports import free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]


def upload_folder(server: MotoServer, bucket: str, folder: Path, prefix: str) -> int:
    """Put every file of ``folder`` under ``prefix`` in ``bucket`` (what `repo push` does, without its checks)."""
    client = server.client()
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
            count += 1
    return count


def tritonkit(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**env, "PYTHONUNBUFFERED": "1"})


def error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a failed start; any other stderr line may only be start-up progress."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert all(line.startswith("still starting") for line in lines if not line.startswith("error:")), r.stderr
    return errors[0]


def ports() -> list[str]:
    return ["--http-port", str(free_port()), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]


@pytest.fixture(scope="module")
def s3_env(s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The commands' environment: moto's dummy credentials, a state home of this module, no metadata lookups."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(CREDENTIALS)
    env["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("s3-state"))
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


@pytest.fixture(scope="module")
def s3_repo(s3_server: MotoServer, digits_build: dict[str, Path]) -> str:
    """The digits repository uploaded to a bucket of its own; its URL."""
    bucket = s3_server.make_bucket("tk-serve")
    assert upload_folder(s3_server, bucket, digits_build["repository"], "repos/digits") > 3
    return s3_server.url(bucket, "repos/digits")


@pytest.fixture(scope="module")
def detached(s3_repo: str, s3_env: dict[str, str]) -> Iterator[dict]:
    """One detached server on the S3 repository; its record (read back through `serve status --json`).

    A download folder left by a killed server of an earlier run (its maker's pid is gone) waits in the run
    folder: the start sweeps it away."""
    from toolkit.serve.state import make_private_dir

    run_dir = make_private_dir(_run_dir(s3_repo, s3_env))
    stale = run_dir / "download-999999999-stale"
    (stale / "folderABCDEF").mkdir(parents=True)
    r = tritonkit(["serve", "--repository", s3_repo, "--runtime", "embedded", "--detach", *ports()], s3_env,
                  timeout=400)
    assert r.returncode == 0, r.stderr
    status = json.loads(tritonkit(["serve", "status", "--repository", s3_repo, "--json"], s3_env).stdout)
    status["stale_download_left"] = stale.exists()
    try:
        yield {"status": status, "start": r}
    finally:
        tritonkit(["serve", "stop", "--repository", s3_repo], s3_env)


def _run_dir(url: str, env: dict[str, str]) -> Path:
    """The run folder `tritonkit serve` uses for ``url`` under the module's state home."""
    from toolkit.serve.state import run_dir_for

    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = env["XDG_STATE_HOME"]
    try:
        return run_dir_for(url)
    finally:
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old


def _logits(http_url: str, batch: np.ndarray) -> np.ndarray:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(http_url)
    inp = httpclient.InferInput("input", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch)
    return client.infer("digits", [inp]).as_numpy("logits")


def test_s3_answers_equal_folder(detached: dict, triton_server) -> None:
    status = detached["status"]
    assert status["running"] and status["ready"], status
    assert {m["name"]: m["state"] for m in status["models"]}.get("digits") == "READY", status["models"]
    batch = np.random.default_rng(0).uniform(0, 16, size=(5, 1, 8, 8)).astype(np.float32)
    from_s3 = _logits(status["http_url"], batch)
    from_folder = _logits(triton_server.http_url, batch)
    assert from_s3.shape == (5, 10)
    np.testing.assert_array_equal(from_s3, from_folder)


def test_s3_run_record_and_argv_hold_no_credentials(detached: dict, s3_repo: str) -> None:
    status = detached["status"]
    assert status["repository"] == s3_repo
    run_dir = Path(status["run_dir"])
    record = (run_dir / "server.json").read_text()
    argv = Path(f"/proc/{status['pid']}/cmdline").read_bytes().decode()
    log = Path(status["log"]).read_text(errors="replace")
    for text in (record, argv, log, detached["start"].stdout, detached["start"].stderr):
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in text
        assert CREDENTIALS["AWS_ACCESS_KEY_ID"] not in text.replace(s3_repo, "")
    assert f"--model-repository={s3_repo}" in argv.split("\0")
    # The run folder is keyed by the URL, not by a local path of that name.
    from toolkit.serve.state import run_dir_for

    assert run_dir.name == run_dir_for(s3_repo + "/").name
    assert run_dir == _run_dir(s3_repo, {"XDG_STATE_HOME": str(run_dir.parents[2])})


def test_s3_downloads_live_in_the_run_folder(detached: dict) -> None:
    status = detached["status"]
    download = Path(status["download_dir"])
    assert download.parent == Path(status["run_dir"]) and download.name.startswith("download-")
    assert download.stat().st_mode & 0o077 == 0
    assert not status["stale_download_left"], "the start did not sweep a dead server's download folder"
    localized = [p for p in download.iterdir() if p.name.startswith("folder")]
    assert localized, "Triton downloaded nothing into the run folder"
    assert any(any(p.rglob("model.onnx")) for p in localized), [str(p) for p in download.rglob("*")]


def test_s3_progress_read_from_the_log(detached: dict, s3_repo: str) -> None:
    from toolkit.serve.embedded import EmbeddedServer

    server = EmbeddedServer(s3_repo, log_path=detached["status"]["log"])
    line = server.loading_progress(12.0)
    assert line.startswith(f"still starting from {s3_repo}: 12 s, ")
    loaded = len([m for m in detached["status"]["models"] if m["state"] == "READY"])
    assert line.endswith(f": 12 s, {loaded} models loaded"), line


def test_s3_stop_removes_downloads(s3_repo: str, s3_env: dict[str, str], detached: dict) -> None:
    """Last of the shared server's tests: stop it and find nothing left of its downloads or record."""
    status = detached["status"]
    r = tritonkit(["serve", "stop", "--repository", s3_repo], s3_env)
    assert r.returncode == 0 and "stopped the server" in r.stdout, r.stderr
    assert not Path(status["download_dir"]).exists()
    assert not (Path(status["run_dir"]) / "server.json").exists()
    assert not Path(f"/proc/{status['pid']}").exists() or \
        "tritonserver" not in Path(f"/proc/{status['pid']}/cmdline").read_bytes().decode(errors="replace")


def test_s3_bad_url_refused(s3_env: dict[str, str], s3_server: MotoServer) -> None:
    r = tritonkit(["serve", "--repository", f"s3://127.0.0.1:{s3_server.port}/Bad_Bucket/x", *ports()], s3_env)
    line = error_line(r)
    assert "Bad_Bucket" in line and "not valid" in line


def test_s3_missing_bucket_one_line(s3_env: dict[str, str], s3_server: MotoServer) -> None:
    url = s3_server.url("tk-no-such-bucket", "repo")
    r = tritonkit(["serve", "--repository", url, "--runtime", "embedded", *ports()], s3_env)
    line = error_line(r)
    assert "bucket 'tk-no-such-bucket'" in line and "does not exist (" in line, line
    assert "refused" not in line, line


def test_s3_missing_prefix_one_line(s3_env: dict[str, str], s3_repo: str) -> None:
    url = s3_repo.rsplit("/", 1)[0] + "/nothing-here"
    r = tritonkit(["serve", "--repository", url, "--runtime", "embedded", *ports()], s3_env)
    line = error_line(r)
    assert "nothing is stored under 'repos/nothing-here'" in line, line


def test_s3_no_credentials_one_line(s3_env: dict[str, str], s3_repo: str, tmp_path: Path) -> None:
    env = {k: v for k, v in s3_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    from toolkit.serve.install import tritonkit_home

    env["TRITONKIT_HOME"] = str(tritonkit_home())  # the prepared server, found without HOME
    env["HOME"] = str(tmp_path)  # no ~/.aws profile either
    env["XDG_STATE_HOME"] = str(tmp_path / "state")  # not the shared server's record (same URL)
    r = tritonkit(["serve", "--repository", s3_repo, "--runtime", "embedded", *ports()], env)
    line = error_line(r)
    assert "no credentials are set" in line and "AWS_ACCESS_KEY_ID" in line, line


def test_s3_unreachable_endpoint_one_line(s3_env: dict[str, str]) -> None:
    url = f"s3://127.0.0.1:{free_port()}/tk-bucket/repo"  # nothing listens there
    r = tritonkit(["serve", "--repository", url, "--runtime", "embedded", *ports()], s3_env, timeout=300)
    line = error_line(r)
    assert f"object store http://{url[5:].split('/')[0]} of {url} does not answer" in line, line


def test_s3_killed_server_downloads_removed(s3: MotoServer, s3_repo: str, tmp_path: Path) -> None:
    """A Triton killed outright cannot remove what it downloaded; stopping its EmbeddedServer does."""
    import signal

    from toolkit.serve.embedded import EmbeddedServer

    server = EmbeddedServer(s3_repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            log_path=tmp_path / "triton.log", download_root=tmp_path / "downloads")
    server.start()
    try:
        download = server.download_dir
        assert download is not None and download.parent == tmp_path / "downloads"
        assert any(download.rglob("model.onnx"))
        os.kill(server.pid, signal.SIGKILL)
        server._proc.wait(10)
        assert any(download.rglob("model.onnx"))  # what a killed Triton leaves behind
    finally:
        server.stop()
    assert not download.exists()


@pytest.fixture(scope="module")
def strict_s3(tmp_path_factory: pytest.TempPathFactory, digits_build: dict[str, Path]) -> Iterator[dict[str, str]]:
    """A moto server that checks signatures (IAM on: only its first 3 requests go unchecked, which make a
    user and its key), holding the digits repository; the URL and the user's real key."""
    import boto3

    from tests.objectstore import _wait_listening

    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3", **CREDENTIALS}
    log = open(tmp_path_factory.mktemp("moto-auth") / "moto.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env)
    try:
        _wait_listening(port, process, 60)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="tk")
        iam.put_user_policy(UserName="tk", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="tk")["AccessKey"]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        s3.create_bucket(Bucket="tk-strict")
        folder = digits_build["repository"]
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                s3.upload_file(str(path), "tk-strict", f"repo/{path.relative_to(folder).as_posix()}")
        yield {"url": f"s3://127.0.0.1:{port}/tk-strict/repo", "key_id": key["AccessKeyId"]}
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_s3_refused_credentials_one_line(strict_s3: dict[str, str], s3_env: dict[str, str], tmp_path: Path) -> None:
    env = {**s3_env, "AWS_ACCESS_KEY_ID": strict_s3["key_id"], "AWS_SECRET_ACCESS_KEY": "not-the-secret-000",
           "XDG_STATE_HOME": str(tmp_path / "state")}
    r = tritonkit(["serve", "--repository", strict_s3["url"], "--runtime", "embedded", *ports()], env)
    line = error_line(r)
    assert "not-the-secret-000" not in r.stderr + r.stdout
    assert "bucket 'tk-strict'" in line and "refused the credentials" in line, line
    assert "AWS_SECRET_ACCESS_KEY" in line and "does not exist" not in line, line
