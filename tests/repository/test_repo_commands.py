"""``tritonkit repo`` as a newcomer meets it: nothing added when nothing changed, refusals before
anything is written, and a list that reads each version's own config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.server.helpers import one_error_line, run_tritonkit
from toolkit.repository.config import ServingOptions
from toolkit.repository.publish import publish_onnx
from toolkit.repository.storage import version_numbers


def test_repo_add_says_unchanged_and_adds_nothing_when_newest_version_holds_same_content(
        tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    add = ["repo", "add", "m", "--repository", str(repo), "--onnx", str(digits_onnx), "--no-warmup"]
    assert run_tritonkit(add, tmp_path).returncode == 0
    again = run_tritonkit(add, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("unchanged: version 1 of m already holds this"), again.stdout
    assert version_numbers(repo / "m") == [1]
    forced = run_tritonkit([*add, "--force", "--json"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["version"] == 2 and json.loads(forced.stdout)["created"] is True
    assert version_numbers(repo / "m") == [1, 2]


def test_rollback_says_unchanged_when_target_is_the_newest_version(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False, max_batch_size=8))
    same = run_tritonkit(["repo", "rollback", "m", "--to", "2", "--repository", str(repo)], tmp_path)
    assert same.returncode == 0, same.stderr
    assert same.stdout.startswith("unchanged: version 2 of m already holds this"), same.stdout
    assert version_numbers(repo / "m") == [1, 2]
    back = run_tritonkit(["repo", "rollback", "m", "--to", "1", "--repository", str(repo)], tmp_path)
    assert back.returncode == 0 and "version 3 is a copy of version 1" in back.stdout
    again = run_tritonkit(["repo", "rollback", "m", "--to", "1", "--repository", str(repo)], tmp_path)
    assert "unchanged: version 3" in again.stdout and version_numbers(repo / "m") == [1, 2, 3]
    forced = run_tritonkit(["repo", "rollback", "m", "--to", "3", "--force", "--repository", str(repo)], tmp_path)
    assert forced.returncode == 0 and version_numbers(repo / "m") == [1, 2, 3, 4]


def test_prune_and_rollback_fail_in_one_line_when_model_is_unknown(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    for args in (["prune", "nosuch", "--keep", "1"], ["rollback", "nosuch", "--to", "1"]):
        line = one_error_line(run_tritonkit(["repo", *args, "--repository", str(repo)], tmp_path))
        assert "no such model folder (models here: m)" in line
    assert version_numbers(repo / "m") == [1]


def test_repo_list_shows_each_versions_own_config_and_readable_sizes_when_config_changed(
        tmp_path: Path, digits_build: dict) -> None:
    repo = tmp_path / "repo"
    onnx = tmp_path / "build" / "m.onnx"
    onnx.parent.mkdir()
    shutil.copy(digits_build["onnx"], onnx)
    record = json.loads(Path(f"{digits_build['onnx']}.export.json").read_text())
    record["checkpoint"] = str(digits_build["checkpoint"])
    Path(f"{onnx}.export.json").write_text(json.dumps(record))
    base = ["repo", "add", "m", "--repository", str(repo), "--onnx", str(onnx), "--no-warmup"]
    assert run_tritonkit([*base, "--max-batch", "32"], tmp_path).returncode == 0
    assert run_tritonkit([*base, "--max-batch", "8"], tmp_path).returncode == 0
    rows = json.loads(run_tritonkit(["repo", "list", "--repository", str(repo), "--json"], tmp_path).stdout)
    assert [(r["version"], r["max_batch_size"]) for r in rows] == [(1, 32), (2, 8)]
    assert rows[0]["metrics"]["test_accuracy"] >= 0.9  # read through the export record's checkpoint
    assert isinstance(rows[0]["size_bytes"], int) and rows[0]["size_bytes"] > 1024
    table = run_tritonkit(["repo", "list", "--repository", str(repo)], tmp_path).stdout.splitlines()
    v1, v2 = (line.split() for line in table[1:3])
    assert v1[3:5] == [f"{rows[0]['size_bytes'] / 1024:.1f}", "KiB"] and v1[5] == "32" and v2[5] == "8"
    assert float(v1[6]) >= 0.9
    assert table[2].endswith("served (default version)") and not table[1].endswith("(default version)")


def test_repo_validate_names_the_parent_when_given_a_model_folder(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    line = one_error_line(run_tritonkit(["repo", "validate", str(repo / "m")], tmp_path))
    assert "is a model folder" in line and f"tritonkit repo validate {repo}" in line


def test_repo_add_load_refuses_and_publishes_nothing_when_no_server_is_recorded(
        tmp_path: Path, digits_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))  # no other test's server
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    r = run_tritonkit(["repo", "add", "m", "--repository", str(repo), "--onnx", str(digits_onnx), "--force",
                       "--load"], tmp_path)
    assert "no running server is recorded" in one_error_line(r) and "nothing was published" in r.stderr
    assert version_numbers(repo / "m") == [1]
