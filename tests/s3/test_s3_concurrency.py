"""Writers of one s3:// repository: concurrent ones get distinct versions; a killed one leaves the live
config naming only complete versions, and the next writer takes its lease over and completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contract.errors import RepositoryError
from tests.objectstore import CREDENTIALS, MotoServer
from tests.s3.s3_helpers import named, scale_model, served_consistent, tritonkit
from toolkit.repository.s3 import LEASE, S3Storage


def _add(url: str, onnx: Path, **env: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("tritonkit")
    return subprocess.Popen([str(exe), "repo", "add", "m", "--repository", url, "--onnx", str(onnx), "--no-warmup",
                             "--keep-versions", "3", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **CREDENTIALS, **env})


def test_two_writers_at_once_get_distinct_versions(s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    url = s3.url(bucket, "r")
    first = _add(url, scale_model(tmp_path / "0.onnx", 0.0))
    assert first.wait(120) == 0, first.stderr.read() if first.stderr else ""
    procs = [_add(url, scale_model(tmp_path / f"{w}.onnx", w)) for w in (1.0, 2.0)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    versions = sorted(json.loads(o[0])["version"] for o in outs)
    assert versions == [2, 3]
    assert named(url, "m") == [1, 2, 3]
    assert served_consistent(url, "m") == []
    assert S3Storage(url).exists(LEASE) is None  # released


@pytest.mark.parametrize("step", ["s3_pulled", "s3_first_object", "s3_verified", "s3_config_written"])
def test_a_writer_killed_mid_publish_leaves_the_config_consistent(s3: MotoServer, bucket: str, tmp_path: Path,
                                                                  step: str) -> None:
    url = s3.url(bucket, "r")
    assert _add(url, scale_model(tmp_path / "0.onnx", 0.0)).wait(120) == 0
    killed = _add(url, scale_model(tmp_path / "1.onnx", 1.0), TRITONKIT_FAULT_AT=step)
    assert killed.wait(120) == -9
    assert served_consistent(url, "m") == []
    assert named(url, "m") == ([1, 2] if step == "s3_config_written" else [1])
    assert S3Storage(url).exists(LEASE) is not None  # the dead writer's lease is still there
    started = time.monotonic()
    nxt = _add(url, scale_model(tmp_path / "2.onnx", 2.0))
    out, err = nxt.communicate(timeout=120)
    assert nxt.returncode == 0, err
    assert time.monotonic() - started < 60  # taken over at once (its writer is gone), not after expiry
    new = json.loads(out)["version"]
    assert new == (3 if step in ("s3_first_object", "s3_verified", "s3_config_written") else 2)
    assert new in named(url, "m") and served_consistent(url, "m") == []


def test_push_killed_after_its_first_object_is_completed_by_the_next_push(s3: MotoServer, bucket: str,
                                                                          tmp_path: Path) -> None:
    from toolkit.repository.options import ServingOptions
    from toolkit.repository.publish import publish_onnx

    repo = tmp_path / "local"
    url = s3.url(bucket, "r")
    publish_onnx(repo, "m", scale_model(tmp_path / "a.onnx", 1.0), ServingOptions(warmup=False))
    tritonkit("repo", "push", str(repo), url)
    publish_onnx(repo, "m", scale_model(tmp_path / "b.onnx", 2.0), ServingOptions(warmup=False))
    killed = tritonkit("repo", "push", str(repo), url, env={**os.environ, "TRITONKIT_FAULT_AT": "s3_first_object"})
    assert killed.returncode == -9
    assert named(url, "m") == [1] and served_consistent(url, "m") == []
    done = tritonkit("repo", "push", str(repo), url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["versions"] == ["m/2"] and report["skipped"] >= 1  # the object the killed push sent is kept
    assert named(url, "m") == [2] and served_consistent(url, "m") == []


def test_a_live_writers_lease_is_waited_for_and_an_expired_one_taken_over(s3: MotoServer, bucket: str) -> None:
    storage = S3Storage(s3.url(bucket, "r"))
    other = {"owner": "x", "host": "elsewhere", "pid": 1, "expires": time.time() + 300}
    storage.put_bytes(LEASE, json.dumps(other).encode())
    with pytest.raises(RepositoryError, match="another writer .elsewhere pid 1. holds the lease"):
        with storage.lease(timeout=1):
            pass
    storage.put_bytes(LEASE, json.dumps({**other, "expires": time.time() - 1}).encode())
    with storage.lease(timeout=5) as lease:
        assert json.loads(storage.get_bytes(LEASE, "lease"))["owner"] == lease.token
        with pytest.raises(RepositoryError, match="another writer"):  # a second writer cannot get it
            with S3Storage(s3.url(bucket, "r")).lease(timeout=1):
                pass
    assert storage.exists(LEASE) is None
