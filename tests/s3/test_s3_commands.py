"""repo add/list/rollback/prune/validate on an s3:// repository (real moto server, real CLI), and every
way the bucket can be unusable refused in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.objectstore import CREDENTIALS, MotoServer
from tests.s3.s3_helpers import keys, scale_model, tritonkit
from toolkit.repository.objectsync import push
from toolkit.repository.options import ServingOptions
from toolkit.repository.publish import publish_onnx


def _config(s3: MotoServer, bucket: str, key: str) -> str:
    return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_add_list_rollback_prune_on_s3_keep_config_and_objects_consistent(s3: MotoServer, bucket: str,
                                                                          tmp_path: Path) -> None:
    url = s3.url(bucket, "repo")
    a, b = scale_model(tmp_path / "a.onnx", 1.0), scale_model(tmp_path / "b.onnx", 2.0)
    for onnx in (a, b):
        r = tritonkit("repo", "add", "m", "--repository", url, "--onnx", str(onnx), "--no-warmup")
        assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"published m version 2 -> {url}/m/2"
    again = tritonkit("repo", "add", "m", "--repository", url, "--onnx", str(b), "--no-warmup")
    assert again.stdout.startswith("unchanged: version 2 of m")
    assert "versions: 2" in _config(s3, bucket, "repo/m/config.pbtxt")

    rows = json.loads(tritonkit("repo", "list", "--repository", url, "--json").stdout)
    assert [(r["version"], r["status"]) for r in rows] == [(1, "not served (version policy)"),
                                                         (2, "served (default version)")]
    assert rows[0]["platform"] == "onnxruntime_onnx" and rows[0]["size_bytes"] > 0

    back = tritonkit("repo", "rollback", "m", "--to", "1", "--repository", url)
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == "rolled back m: version 3 is a copy of version 1"
    three = s3.client().get_object(Bucket=bucket, Key="repo/m/3/model.onnx")["Body"].read()
    assert three == a.read_bytes()
    assert "versions: 3" in _config(s3, bucket, "repo/m/config.pbtxt")

    pruned = tritonkit("repo", "prune", "m", "--keep", "1", "--repository", url)
    assert pruned.stdout.strip() == "pruned m: removed versions [1, 2]"
    assert keys(s3.client(), bucket, "repo/m/") == ["repo/m/3/manifest.json", "repo/m/3/model.onnx",
                                                    "repo/m/config.pbtxt"]
    listed = tritonkit("repo", "list", "--repository", url)
    assert "served (default version)" in listed.stdout and listed.stdout.count("\n") == 2


def test_validate_on_s3_finds_what_it_finds_on_the_folder(s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    repo = tmp_path / "local"
    opts = ServingOptions(warmup=False, keep_versions=2)
    for w in (1.0, 2.0):
        publish_onnx(repo, "m", scale_model(tmp_path / f"{w}.onnx", w), opts)
    url = s3.url(bucket, "v")
    push(repo, url)
    # The same damage on both sides: a modified model file and a stray file in a version.
    client = s3.client()
    for target in ("m/1/model.onnx", "m/2/extra.txt"):
        data = b"tampered"
        (repo / target).write_bytes(data)
        client.put_object(Bucket=bucket, Key=f"v/{target}", Body=data)
    local = tritonkit("repo", "validate", str(repo), "--json")
    remote = tritonkit("repo", "validate", url, "--json")
    assert local.returncode == remote.returncode == 1
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert len(json.loads(local.stdout)) >= 2
    clean = tritonkit("repo", "validate", s3.url(bucket, "nothing-here"))
    assert "holds no models" in clean.stdout


@pytest.mark.parametrize("case", ["bad-url", "no-bucket", "no-credentials", "unreachable", "gs", "as"])
def test_unusable_repository_is_one_line_without_traceback(s3: MotoServer, bucket: str, tmp_path: Path,
                                                            case: str) -> None:
    env = {**os.environ, **CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}
    url = s3.url(bucket, "r")
    expect = {"bad-url": "needs a port", "no-bucket": "does not exist", "no-credentials": "no S3 credentials",
              "unreachable": "cannot reach the S3 endpoint", "gs": "tritonkit cannot write them yet",
              "as": "tritonkit cannot write them yet"}[case]
    if case == "bad-url":
        url = f"s3://http://127.0.0.1/{bucket}/r"
    elif case == "no-bucket":
        url = s3.url("no-such-bucket", "r")
    elif case == "no-credentials":
        for name in CREDENTIALS:
            env.pop(name)
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
        env.pop("AWS_PROFILE", None)
    elif case == "unreachable":
        url = f"s3://127.0.0.1:9/{bucket}/r"
    elif case == "gs":
        url = "gs://some-bucket/r"
    elif case == "as":
        url = "as://account1/container/r"
    onnx = scale_model(tmp_path / "a.onnx", 1.0)
    second = {"bad-url": ["repo", "validate", url], "no-bucket": ["repo", "pull", url, str(tmp_path / "copy")],
              "unreachable": ["repo", "push", str(tmp_path), url], "as": ["repo", "push", str(tmp_path), url]}.get(
        case, ["repo", "add", "m", "--repository", url, "--onnx", str(onnx), "--no-warmup"])
    for args in (["repo", "list", "--repository", url], second):
        r = tritonkit(*args, env=env)
        assert r.returncode != 0, (args, r.stdout)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert expect in r.stderr, r.stderr
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in r.stderr + r.stdout


def test_s3_storage_commits_a_staged_version_through_the_storage_interface(s3: MotoServer, bucket: str,
                                                                           tmp_path: Path) -> None:
    import shutil

    from contract.errors import RepositoryError
    from tests.s3.s3_helpers import named, served_consistent
    from toolkit.repository.s3 import S3Storage
    from toolkit.repository.storage import RepositoryStorage

    repo = tmp_path / "local"
    publish_onnx(repo, "m", scale_model(tmp_path / "a.onnx", 1.0), ServingOptions(warmup=False))
    stage = tmp_path / "stage"
    shutil.copytree(repo / "m", stage / "model")
    url = s3.url(bucket, "r")
    storage: RepositoryStorage = S3Storage(url)
    with pytest.raises(RepositoryError, match="without the writer lease"):
        storage.commit_version("m", stage, 1, None, beside=False, new_model=True)
    with storage.lock():
        storage.commit_version("m", stage, 1, None, beside=False, new_model=True)
        assert storage.model_names() == ["m"] and storage.version_numbers("m") == [1]
        assert named(url, "m") == [1] and served_consistent(url, "m") == []
        assert "version_policy" in storage.read_text("m/config.pbtxt", "config", 1 << 20)
        storage.remove_version("m", 1)
    assert storage.version_numbers("m") == []
