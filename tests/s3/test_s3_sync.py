"""repo push / pull against a real S3 server (moto): only changed files move, checksums are enforced,
nobody's work is overwritten silently."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from contract.errors import RepositoryError
from tests.objectstore import MotoServer
from tests.s3.s3_helpers import keys, scale_model, tritonkit
from toolkit.repository.objectsync import pull, push
from toolkit.repository.options import ServingOptions
from toolkit.repository.publish import publish_onnx
from toolkit.repository.validate import validate_repository

OPTS = ServingOptions(warmup=False, keep_versions=2)


def _local_repo(tmp_path: Path, weights: list[float], name: str = "m") -> Path:
    repo = tmp_path / "local"
    for w in weights:
        publish_onnx(repo, name, scale_model(tmp_path / "src" / f"{w}.onnx", w), OPTS)
    return repo


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_then_pull_round_trip_moves_only_changed_files(s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    repo = _local_repo(tmp_path, [1.0, 2.0])
    url = s3.url(bucket, "models")
    first = push(repo, url)
    assert first.uploaded == 5  # two versions x (model.onnx + manifest.json) + config
    assert sorted(first.versions) == ["m/1", "m/2"]
    again = push(repo, url)
    assert (again.uploaded, again.skipped, again.versions) == (0, 4, [])

    publish_onnx(repo, "m", scale_model(tmp_path / "src" / "3.onnx", 3.0), OPTS)
    third = push(repo, url)
    assert third.uploaded == 3 and third.versions == ["m/3"]  # model.onnx + manifest + config
    assert third.skipped == 4

    copy = tmp_path / "copy"
    got = pull(url, copy)
    assert got.downloaded == 7  # 3 versions x 2 files + config
    assert _tree(copy) == {k: v for k, v in _tree(repo).items() if not k.startswith(".")}
    assert [p for p in validate_repository(copy) if p.is_error] == []
    assert pull(url, copy).downloaded == 0

    publish_onnx(repo, "m", scale_model(tmp_path / "src" / "4.onnx", 4.0), OPTS)
    push(repo, url)
    incremental = pull(url, copy)
    assert incremental.downloaded == 3 and incremental.versions == ["m/4"]
    assert (copy / "m" / "config.pbtxt").read_text() == (repo / "m" / "config.pbtxt").read_text()


def test_pull_refuses_a_tampered_object_and_leaves_nothing_half_pulled(s3: MotoServer, bucket: str,
                                                                        tmp_path: Path) -> None:
    repo = _local_repo(tmp_path, [1.0])
    url = s3.url(bucket, "r")
    push(repo, url)
    client = s3.client()
    key = "r/m/1/model.onnx"
    original = client.head_object(Bucket=bucket, Key=key)["Metadata"]["sha256"]
    # Same size, other bytes; tritonkit's metadata kept, so only hashing the downloaded bytes finds it.
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=data[:-1] + bytes([data[-1] ^ 1]), Metadata={"sha256": original})
    dest = tmp_path / "dest"
    with pytest.raises(RepositoryError, match="sha256 differs from the version's manifest"):
        pull(url, dest)
    assert not (dest / "m").exists()
    assert [n for n in os.listdir(tmp_path) if "staging" in n and any((tmp_path / n).iterdir())] == []

    # Tampered without the metadata: S3's own checksum tells, before anything is downloaded.
    client.put_object(Bucket=bucket, Key=key, Body=b"not a model")
    result = tritonkit("repo", "pull", url, str(dest))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "differs from its manifest" in result.stderr and "model.onnx" in result.stderr
    assert not (dest / "m").exists()


def test_push_over_a_different_version_is_refused_until_forced(s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    url = s3.url(bucket, "r")
    mine = _local_repo(tmp_path / "a", [1.0])
    theirs = _local_repo(tmp_path / "b", [5.0])
    push(theirs, url)
    before = s3.client().get_object(Bucket=bucket, Key="r/m/1/manifest.json")["Body"].read()
    result = tritonkit("repo", "push", str(mine), url)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "holds another version 1" in result.stderr and "--force" in result.stderr
    assert s3.client().get_object(Bucket=bucket, Key="r/m/1/manifest.json")["Body"].read() == before

    forced = tritonkit("repo", "push", str(mine), url, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["versions"] == ["m/1"]
    assert s3.client().get_object(Bucket=bucket, Key="r/m/1/manifest.json")["Body"].read() == \
        (mine / "m" / "1" / "manifest.json").read_bytes()


def test_pull_over_a_different_local_version_is_refused_until_forced(s3: MotoServer, bucket: str,
                                                                      tmp_path: Path) -> None:
    url = s3.url(bucket, "r")
    push(_local_repo(tmp_path / "a", [1.0]), url)
    local = _local_repo(tmp_path / "b", [7.0, 8.0])
    kept = _tree(local)
    result = tritonkit("repo", "pull", url, str(local))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "holds another version 1" in result.stderr and "--force" in result.stderr
    assert _tree(local) == kept
    assert pull(url, local, force=True).versions == ["m/1"]
    assert (local / "m" / "1" / "manifest.json").read_bytes() == \
        s3.client().get_object(Bucket=bucket, Key="r/m/1/manifest.json")["Body"].read()
    assert [p for p in validate_repository(local) if p.is_error] == []


def test_push_skips_leftovers_of_killed_publishes(s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    repo = _local_repo(tmp_path, [1.0])
    (repo / "m" / "2").mkdir()  # a killed local publish's leftover: no config names it
    (repo / "m" / "2" / "model.onnx").write_bytes(b"partial")
    push(repo, s3.url(bucket, "r"))
    assert keys(s3.client(), bucket) == ["r/m/1/manifest.json", "r/m/1/model.onnx", "r/m/config.pbtxt"]


def test_push_refuses_to_stop_serving_what_the_bucket_serves(s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    url = s3.url(bucket, "r")
    repo = _local_repo(tmp_path, [1.0])
    push(repo, url)
    newer = tmp_path / "newer"
    pull(url, newer)
    publish_onnx(newer, "m", scale_model(tmp_path / "src" / "2.onnx", 2.0), OPTS)
    push(newer, url)  # the bucket now serves versions 1 and 2
    with pytest.raises(RepositoryError, match=r"serves versions \[2\] that .* lacks"):
        push(repo, url)
    assert pull(url, repo).versions == ["m/2"]  # catching up is the fix
    assert push(repo, url).uploaded == 0
