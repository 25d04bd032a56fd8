"""Bad input to ``tritonkit deploy k8s``: one error line, a non-zero exit, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import CLUSTER_ENDPOINT, run_cli, tree
from tests.objectstore import CREDENTIALS
from toolkit.serve.ports import free_port

NO_READ = ["--image", "nvcr.io/nvidia/tritonserver:24.09-py3", "--gpus", "0"]
GOOD = "s3://minio.storage.svc:9000/models/prod"


def _refused(out: Path, *args: str, code: int | None = None, env: dict[str, str] | None = None) -> str:
    before = tree(out) if out.is_dir() else None
    done = run_cli("deploy", "k8s", "--out", str(out), *args, env=env)
    assert done.returncode != 0 and (code is None or done.returncode == code), (done.returncode, done.stdout)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert (tree(out) if out.is_dir() else None) == before  # nothing half-written, nothing replaced
    if out.parent.is_dir():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no stage left behind
    return lines[0]


def test_a_local_path_is_refused_because_a_cluster_cannot_read_it(tmp_path: Path) -> None:
    line = _refused(tmp_path / "out", "--repository", str(tmp_path / "model_repository"), *NO_READ, code=2)
    assert "local path" in line and "cannot read" in line and "repo push" in line


@pytest.mark.parametrize("replicas", ["0", "-2"])
def test_fewer_than_one_replica_is_refused(tmp_path: Path, replicas: str) -> None:
    assert "at least 1 replica" in _refused(tmp_path / "out", "--repository", GOOD, "--replicas", replicas,
                                            *NO_READ, code=2)


@pytest.mark.parametrize("secret", ["Bad_Secret", "-leading", "trailing-", "has space", "x" * 254])
def test_a_secret_name_that_is_not_dns1123_is_refused(tmp_path: Path, secret: str) -> None:
    line = _refused(tmp_path / "out", "--repository", GOOD, "--secret", secret, *NO_READ, code=2)
    assert "--secret" in line and "DNS-1123" in line


def test_a_loopback_endpoint_needs_the_cluster_endpoint(tmp_path: Path) -> None:
    line = _refused(tmp_path / "out", "--repository", "s3://127.0.0.1:9000/models/prod", *NO_READ, code=2)
    assert "loopback" in line and "--cluster-endpoint" in line


def test_other_content_in_out_is_refused_and_force_replaces_only_what_deploy_wrote(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = _refused(out, "--repository", GOOD, *NO_READ, code=2)
    assert "already holds other files" in line and "--force" in line
    assert (out / "notes.txt").read_text() == "mine"

    kept = run_cli("deploy", "k8s", "--out", str(out), "--repository", GOOD, *NO_READ, "--force")
    assert kept.returncode == 2 and kept.stderr.count("\n") == 1 and "notes.txt" in kept.stderr, kept.stderr
    assert (out / "notes.txt").read_text() == "mine"  # --force never deletes what deploy k8s did not write
    (out / "notes.txt").unlink()
    (out / "base").mkdir()
    (out / "base" / "deployment.yaml").write_text("edited by hand\n")
    line = _refused(out, "--repository", GOOD, *NO_READ, code=2)
    assert "already holds other files" in line

    done = run_cli("deploy", "k8s", "--out", str(out), "--repository", GOOD, *NO_READ, "--force")
    assert done.returncode == 0, done.stderr
    assert "edited by hand" not in (out / "base" / "deployment.yaml").read_text()
    first = tree(out)
    again = run_cli("deploy", "k8s", "--out", str(out), "--repository", GOOD, *NO_READ)
    assert again.returncode == 0 and again.stdout.startswith("unchanged:"), again.stdout + again.stderr
    assert tree(out) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_plans_whose_tensorrt_no_release_ships_are_refused(s3_env, repos, tmp_path: Path) -> None:
    line = _refused(tmp_path / "out", "--repository", repos["oldtrt"], "--cluster-endpoint", CLUSTER_ENDPOINT)
    assert "TensorRT 8.6" in line and "--image" in line


def test_plans_with_zero_gpus_are_refused(s3_env, repos, tmp_path: Path) -> None:
    line = _refused(tmp_path / "out", "--repository", repos["plans"], "--cluster-endpoint", CLUSTER_ENDPOINT,
                    "--gpus", "0", code=2)
    assert "need a GPU" in line


def test_an_empty_or_unreachable_repository_is_one_line(s3_env, repos, tmp_path: Path) -> None:
    line = _refused(tmp_path / "out", "--repository", repos["empty"], "--cluster-endpoint", CLUSTER_ENDPOINT)
    assert "holds no model" in line
    closed = f"s3://127.0.0.1:{free_port()}/models/prod"
    line = _refused(tmp_path / "out", "--repository", closed, "--cluster-endpoint", CLUSTER_ENDPOINT)
    assert "cannot read repository" in line and "--image" in line


def test_no_credentials_is_one_line_that_names_the_variables(deploy_s3, repos, tmp_path: Path) -> None:
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": str(empty_home / "c"),
           "AWS_CONFIG_FILE": str(empty_home / "cfg"), "HOME": str(empty_home)}
    line = _refused(tmp_path / "out", "--repository", repos["onnx"], "--cluster-endpoint", CLUSTER_ENDPOINT, env=env)
    assert "AWS_ACCESS_KEY_ID" in line
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in line


@pytest.mark.parametrize("args, words", [
    (["--max-replicas", "1", "--replicas", "2"], "--max-replicas"),
    (["--memory", "lots"], "quantity"),
    (["--name", "Triton"], "--name"),
    (["--namespace", "ml_prod"], "--namespace"),
    (["--cluster-endpoint", "nohostport"], "--cluster-endpoint"),
])
def test_other_bad_options_are_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    assert words in _refused(tmp_path / "out", "--repository", GOOD, *NO_READ, *args, code=2)


def test_an_out_path_that_cannot_be_a_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    line = _refused(tmp_path / "afile" / "k8s", "--repository", GOOD, *NO_READ, code=2)
    assert "cannot write there" in line
    line = _refused(tmp_path / "afile", "--repository", GOOD, *NO_READ, code=2)
    assert "not a folder" in line
    assert (tmp_path / "afile").read_text() == "mine"
