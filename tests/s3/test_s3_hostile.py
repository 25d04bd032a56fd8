"""What a bucket's other writers can leave behind: a manifest naming files outside its version, a model held
by a killed publish, a hand-made config that does not pin its versions. None may reach outside the target
folder, stop a server from starting, or let a polling Triton load a half-uploaded version."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from contract.errors import RepositoryError
from tests.objectstore import CREDENTIALS, MotoServer
from tests.s3.s3_helpers import keys, named, scale_model, served_consistent, tritonkit
from toolkit.repository.objectsync import pull, push
from toolkit.repository.options import ServingOptions
from toolkit.repository.publish import publish_onnx
from toolkit.repository.remote_publish import is_hold_config, remote_config
from toolkit.repository.s3 import S3Storage

OPTS = ServingOptions(warmup=False, keep_versions=3)


def _pushed(s3: MotoServer, bucket: str, tmp_path: Path) -> str:
    repo = tmp_path / "local"
    publish_onnx(repo, "m", scale_model(tmp_path / "src" / "1.onnx", 1.0), OPTS)
    url = s3.url(bucket, "r")
    push(repo, url)
    return url


@pytest.mark.parametrize("rel", ["../../../../escaped.txt", "/tmp/escaped-abs.txt", "a//b", ".hidden"])
def test_pull_refuses_a_manifest_naming_a_file_outside_its_version(s3: MotoServer, bucket: str, tmp_path: Path,
                                                                   rel: str) -> None:
    url = _pushed(s3, bucket, tmp_path)
    client = s3.client()
    key = "r/m/1/manifest.json"
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    manifest["files"][rel] = "0" * 64
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    client.put_object(Bucket=bucket, Key=f"r/m/1/{rel}".replace("//", "/"), Body=b"planted")
    dest = tmp_path / "pulled" / "repo"
    with pytest.raises(RepositoryError) as err:
        pull(url, dest)
    assert "\n" not in str(err.value)
    planted = [p for p in (tmp_path / "escaped.txt", Path("/tmp/escaped-abs.txt"), tmp_path.parent / "escaped.txt")
               if p.exists()]
    assert planted == []
    assert not (dest / "m" / "1").exists()


def test_a_model_held_by_a_killed_publish_is_swept_by_the_next_writer(s3: MotoServer, bucket: str,
                                                                      tmp_path: Path) -> None:
    url = s3.url(bucket, "r")
    env = {**os.environ, **CREDENTIALS}
    onnx = scale_model(tmp_path / "1.onnx", 1.0)
    killed = tritonkit("repo", "add", "fresh", "--repository", url, "--onnx", str(onnx), "--no-warmup",
                       env={**env, "TRITONKIT_FAULT_AT": "s3_first_object"})
    assert killed.returncode == -9
    storage = S3Storage(url)
    assert is_hold_config(remote_config(storage, "fresh"))  # what Triton refuses to start with
    other = tritonkit("repo", "add", "other", "--repository", url, "--onnx", str(onnx), "--no-warmup", env=env)
    assert other.returncode == 0, other.stderr
    assert remote_config(storage, "fresh") is None
    assert keys(s3.client(), bucket, "r/fresh/") == []
    assert named(url, "other") == [1] and served_consistent(url, "other") == []


def test_a_live_config_that_does_not_pin_its_versions_is_pinned_before_a_new_version_goes_up(
        s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    url = _pushed(s3, bucket, tmp_path)
    client = s3.client()
    text = client.get_object(Bucket=bucket, Key="r/m/config.pbtxt")["Body"].read().decode()
    start = text.index("version_policy")
    end = text.index("}", text.index("}", start) + 1) + 1
    client.put_object(Bucket=bucket, Key="r/m/config.pbtxt", Body=(text[:start] + text[end:]).encode())
    assert "version_policy" not in remote_config(S3Storage(url), "m")  # Triton's default: the latest version
    env = {**os.environ, **CREDENTIALS}
    killed = tritonkit("repo", "add", "m", "--repository", url, "--onnx", str(scale_model(tmp_path / "2.onnx", 2.0)),
                       "--no-warmup", env={**env, "TRITONKIT_FAULT_AT": "s3_first_object"})
    assert killed.returncode == -9
    live = remote_config(S3Storage(url), "m")
    assert "specific" in live and named(url, "m") == [1]  # half-uploaded version 2 is not what Triton would load


def test_a_bad_lease_life_is_one_line(s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    run = tritonkit("repo", "add", "m", "--repository", s3.url(bucket, "r"), "--onnx",
                    str(scale_model(tmp_path / "1.onnx", 1.0)), "--no-warmup",
                    env={**os.environ, **CREDENTIALS, "TRITONKIT_S3_LEASE_SECONDS": "soon"})
    assert run.returncode != 0 and run.stderr.count("\n") == 1 and "TRITONKIT_S3_LEASE_SECONDS" in run.stderr
