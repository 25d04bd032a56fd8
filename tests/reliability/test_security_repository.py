"""Attacks on the model repository (issue 12): each test performs the attack through the real
``tritonkit`` command and asserts the safe outcome: one ``error:`` line, a non-zero exit, no
traceback, and the repository byte-for-byte unchanged (or the attack harmlessly contained)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from toolkit.repository.config import ServingOptions, read_config
from toolkit.repository.manifest import (
    configs_agree,
    labels_filename,
    read_live_config,
    recorded_config,
    verify_version,
)
from toolkit.repository.publish import publish_onnx
from toolkit.repository.storage import STEPS, version_numbers
from toolkit.repository.validate.manifest import named_versions

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def tk(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; a hang is a test failure (TimeoutExpired), never a stuck suite."""
    return subprocess.run([TRITONKIT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def tree_digest(root: Path) -> str:
    """Names, kinds, modes and bytes of everything under ``root`` (symlinks and FIFOs not followed)."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for n in sorted(dirs + files):
            p = Path(dirpath) / n
            st = os.lstat(p)
            h.update(f"{p.relative_to(root)}|{stat.S_IFMT(st.st_mode)}|{stat.S_IMODE(st.st_mode)}".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
    return h.hexdigest()


@pytest.fixture
def repo(tmp_path: Path, digits_onnx: Path) -> Path:
    """A repository with two published versions of ``m`` (max batch 32, then 8)."""
    r = tmp_path / "repo"
    publish_onnx(r, "m", digits_onnx, ServingOptions(warmup=False))
    publish_onnx(r, "m", digits_onnx, ServingOptions(max_batch_size=8, warmup=False))
    return r


def _tamper_manifest(vdir: Path, config: str, fix_sha: bool) -> None:
    path = vdir / "manifest.json"
    m = json.loads(path.read_text())
    m["config"] = config
    if fix_sha:
        m["config_sha256"] = hashlib.sha256(config.encode()).hexdigest()
    path.write_text(json.dumps(m))


# ------------------------------------------------------------------ item 3: rollback of a tampered manifest


@pytest.mark.parametrize(("config", "fix_sha", "needle"), [
    ('name: "m" platform: "onnxruntime_onnx" max_batch_size: 32 input [{ name: "input" ', False,
     "does not match its config_sha256"),
    ('name: "m" platform: "onnxruntime_onnx" max_batch_size: 32 input [{ name: "input" ', True,
     "does not parse as a Triton ModelConfig"),
    ('name: "m" platform: "onnxruntime_onnx" max_batch_size: 32 input [{ name: "input" data_type: TYPE_FP32 '
     'dims: [1, 16, 16] }] output [{ name: "logits" data_type: TYPE_FP32 dims: [10] }]', True,
     "Triton would not load it"),
], ids=["checksum", "unparsable", "unloadable"])
def test_rollback_refuses_and_changes_nothing_when_manifest_config_is_tampered(
        repo: Path, config: str, fix_sha: bool, needle: str) -> None:
    _tamper_manifest(repo / "m" / "1", config, fix_sha)
    before = tree_digest(repo)
    proc = tk("repo", "rollback", "m", "--to", "1", "--repository", str(repo))
    one_error_line(proc, needle)
    assert tree_digest(repo) == before


def test_prune_refuses_and_changes_nothing_when_live_config_does_not_parse(repo: Path) -> None:
    (repo / "m" / "config.pbtxt").write_text("name: \"m\" max_batch_size: {{{")
    before = tree_digest(repo)
    one_error_line(tk("repo", "prune", "m", "--keep", "1", "--repository", str(repo)), "config.pbtxt")
    assert tree_digest(repo) == before


def test_rollback_serves_the_old_version_with_its_own_recorded_config_when_intact(repo: Path) -> None:
    proc = tk("repo", "rollback", "m", "--to", "1", "--repository", str(repo))
    assert proc.returncode == 0, proc.stderr
    live = read_live_config(repo / "m")
    assert live.max_batch_size == 32 and list(live.version_policy.specific.versions) == [3]  # latest 1
    assert configs_agree(recorded_config(repo / "m" / "3"), live)
    assert configs_agree(recorded_config(repo / "m" / "1"), live)


# ------------------------------------------------------------------ item 5: kill at every step, no server


_PUBLISH = """
import sys
from toolkit.repository.publish import publish_onnx
from toolkit.repository.config import ServingOptions
publish_onnx(sys.argv[1], "m", sys.argv[2], ServingOptions(max_batch_size=int(sys.argv[3]), warmup=False),
             labels=sys.argv[4].split(",") if sys.argv[4] else None)
"""


def _served_configs_agree(model_dir: Path) -> list[str]:
    """Versions the live config names whose recorded config differs from it (must be none)."""
    live = read_live_config(model_dir)
    bad = []
    for v in named_versions(live, version_numbers(model_dir)):
        if not (model_dir / str(v)).is_dir() or not configs_agree(recorded_config(model_dir / str(v)), live):
            bad.append(str(v))
        elif live.output[0].label_filename:
            labels = (model_dir / live.output[0].label_filename).read_text().splitlines()
            if labels != json.loads((model_dir / str(v) / "manifest.json").read_text())["labels"]:
                bad.append(f"{v} labels")
    return bad


@pytest.mark.parametrize("step", [s for s in STEPS if s != "done"])
def test_publish_killed_at_any_step_leaves_every_named_version_with_its_own_config(
        tmp_path: Path, digits_onnx: Path, step: str) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))  # max batch 32, digit labels
    letters = ",".join("abcdefghij")
    proc = subprocess.run([sys.executable, "-c", _PUBLISH, str(repo), str(digits_onnx), "8", letters],
                          env={**os.environ, "TRITONKIT_FAULT_AT": step}, timeout=120)
    assert proc.returncode == -9
    assert _served_configs_agree(repo / "m") == []
    assert [p.line() for p in __import__("toolkit.repository.validate", fromlist=["x"]).validate_repository(repo)
            if p.is_error] == []
    nxt = publish_onnx(repo, "m", digits_onnx, ServingOptions(max_batch_size=8, warmup=False),
                       labels=letters.split(","))
    assert nxt.version == max(int(n) for n in os.listdir(repo / "m") if n.isdigit())
    assert _served_configs_agree(repo / "m") == [] and verify_version(nxt.path) == []
    assert not [n for n in os.listdir(repo / "m") if n.startswith(".tritonkit-")]  # item 11: cleaned


# ------------------------------------------------------------------ item 10: FIFOs never block


def test_repo_commands_refuse_or_flag_and_never_hang_when_manifest_is_a_fifo(repo: Path) -> None:
    (repo / "m" / "1" / "manifest.json").unlink()
    os.mkfifo(repo / "m" / "1" / "manifest.json")
    listed = tk("repo", "list", "--repository", str(repo), "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["version"] == 1)
    assert "not a regular file" in row["status"]
    before = tree_digest(repo)
    one_error_line(tk("repo", "rollback", "m", "--to", "1", "--repository", str(repo), timeout=60),
                   "manifest.json", "not a regular file")
    assert tree_digest(repo) == before
    v = tk("repo", "validate", str(repo), timeout=60)
    assert v.returncode == 1 and "1/manifest.json" in v.stdout and "not a regular file" in v.stdout
    added = tk("repo", "add", "m", "--repository", str(repo), "--onnx",
               str(repo / "m" / "2" / "model.onnx"), "--no-warmup", timeout=60)
    assert added.returncode == 0, added.stderr
    assert list(read_live_config(repo / "m").version_policy.specific.versions) == [3]


def test_repo_add_refuses_in_one_line_when_model_or_labels_is_a_fifo(tmp_path: Path, digits_onnx: Path) -> None:
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    one_error_line(tk("repo", "add", "m", "--repository", str(tmp_path / "r"), "--onnx", str(fifo), timeout=60),
                   "not a regular file")
    labels = tmp_path / "labels.txt"
    os.mkfifo(labels)
    one_error_line(tk("repo", "add", "m", "--repository", str(tmp_path / "r"), "--onnx", str(digits_onnx),
                      "--labels", str(labels), timeout=60), "not a regular file")
    assert not (tmp_path / "r" / "m").exists()


def test_repo_list_flags_and_never_hangs_when_config_is_a_fifo(repo: Path) -> None:
    (repo / "m" / "config.pbtxt").unlink()
    os.mkfifo(repo / "m" / "config.pbtxt")
    listed = tk("repo", "list", "--repository", str(repo), "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows and all("the live config is unusable" in r["status"] and "FIFO" in r["status"] for r in rows), rows


# ------------------------------------------------------------------ item 11: stale staging of killed runs


def test_next_publish_removes_only_our_stale_staging_when_writers_were_killed(
        tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    env = {**os.environ, "TRITONKIT_FAULT_AT": "staged"}
    killed = [sys.executable, "-c", _PUBLISH, str(repo), str(digits_onnx), "8", ""]
    assert subprocess.run(killed, env=env, timeout=120).returncode == -9  # a new model: staged beside the repository
    side = tmp_path / ".repo.staging"
    assert len(os.listdir(side)) == 1
    (side / "not-ours").mkdir()  # not our naming pattern: never touched
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    assert os.listdir(side) == ["not-ours"]
    assert subprocess.run(killed, env=env, timeout=120).returncode == -9  # an existing model: staged inside it
    assert len([n for n in os.listdir(repo / "m") if n.startswith(".tritonkit-staging-")]) == 1
    foreign = repo / "m" / ".tritonkit-staging-9-abcdefgh"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)  # another user's: never touched
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    assert [n for n in os.listdir(repo / "m") if n.startswith(".tritonkit-")] == [foreign.name]


# ------------------------------------------------------------------ item 17: symlinked version folders


@pytest.mark.parametrize("target", ["/", "/proc"])
def test_repo_list_flags_and_does_not_follow_when_version_is_a_symlink_out(repo: Path, target: str) -> None:
    (repo / "m" / "7").symlink_to(target)
    t0 = time.monotonic()
    listed = tk("repo", "list", "--repository", str(repo), "--json", timeout=60)
    assert time.monotonic() - t0 < 30 and listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["version"] == 7)
    assert row["size_bytes"] == 0 and "symlink" in row["status"] and "not followed" in row["status"]
    text = tk("repo", "list", "--repository", str(repo), timeout=60).stdout
    assert len([ln for ln in text.splitlines() if ln.split()[1:2] == ["7"]]) == 1
    one_error_line(tk("repo", "rollback", "m", "--to", "7", "--repository", str(repo)), "symlink")
    v = tk("repo", "validate", str(repo), timeout=60)
    assert v.returncode == 1 and "m/7: version: version folder resolves outside the model folder" in v.stdout


# ------------------------------------------------------------------ item 19: repo add runs the validator


def _graph_model(path: Path, *, dims: list[int | str] | None = None, op: str = "Relu", opset: int = 17,
                 cyclic: bool = False) -> Path:
    dims = dims or ["N", 4]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    if cyclic:
        nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                 helper.make_node("Identity", ["b"], ["y"])]
    else:
        nodes = [helper.make_node(op, ["x"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def _labels_with_newline(path: Path, digits_onnx: Path) -> Path:
    from contract.spec import METADATA_SPEC_KEY

    model = onnx.load(str(digits_onnx))
    for p in model.metadata_props:
        if p.key == METADATA_SPEC_KEY:
            spec = json.loads(p.value)
            spec["labels"] = ["zero\nnine", *[str(i) for i in range(1, 10)]]
            p.value = json.dumps(spec)
    onnx.save(model, str(path))
    return path


HOSTILE_MODELS = {
    "non_onnx_bytes": lambda p, d: (p.write_bytes(b"\x08\x07\x12\x04evil"), p)[1],  # decodes, no graph
    "negative_dims": lambda p, d: _graph_model(p, dims=["N", -5]),
    "label_with_newline": _labels_with_newline,
    "cyclic_graph": lambda p, d: _graph_model(p, cyclic=True),
    "unknown_op": lambda p, d: _graph_model(p, op="NoSuchOp"),
    "opset_99": lambda p, d: _graph_model(p, opset=99),
    "dims_2_pow_40": lambda p, d: _graph_model(p, dims=["N", 2**40]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MODELS))
def test_repo_add_refuses_and_changes_nothing_when_triton_could_not_load_the_version(
        repo: Path, tmp_path: Path, digits_onnx: Path, case: str) -> None:
    bad = HOSTILE_MODELS[case](tmp_path / f"{case}.onnx", digits_onnx)
    before = tree_digest(repo)
    proc = tk("repo", "add", "m", "--repository", str(repo), "--onnx", str(bad), "--no-warmup")
    print(f"{case}: {one_error_line(proc)}")
    assert tree_digest(repo) == before, f"{case}: repository changed on a refused add"


# ------------------------------------------------------------------ item 20: a repository that is a mount point


def test_publish_rollback_and_prune_work_when_repository_is_its_own_mount_point(
        tmp_path: Path, digits_onnx: Path) -> None:
    mnt = tmp_path / "repo"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        for args in (["repo", "add", "m", "--onnx", str(digits_onnx), "--no-warmup"],
                     ["repo", "add", "m", "--onnx", str(digits_onnx), "--no-warmup", "--max-batch", "8"],
                     ["repo", "rollback", "m", "--to", "1"], ["repo", "prune", "m", "--keep", "2"]):
            proc = tk(*args, "--repository", str(mnt))
            assert proc.returncode == 0, f"{args}: {proc.stderr}"
        assert version_numbers(mnt / "m") == [2, 3]
        assert list(read_live_config(mnt / "m").version_policy.specific.versions) == [3]
        assert tk("repo", "validate", str(mnt)).returncode == 0
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_prune_error_names_the_path_when_the_repository_is_read_only(tmp_path: Path, digits_onnx: Path) -> None:
    mnt = tmp_path / "repo"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        for mbs in (32, 8):
            publish_onnx(mnt, "m", digits_onnx, ServingOptions(max_batch_size=mbs, warmup=False))
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        before = tree_digest(mnt)
        one_error_line(tk("repo", "prune", "m", "--keep", "1", "--repository", str(mnt)), str(mnt / "m"))
        assert tree_digest(mnt) == before
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# ------------------------------------------------------------------ item 21 and 24: validate checks manifests


def test_repo_validate_names_the_file_and_fails_when_a_weight_range_is_zeroed(repo: Path) -> None:
    model = repo / "m" / "2" / "model.onnx"
    data = bytearray(model.read_bytes())
    proto = onnx.load_from_string(bytes(data))
    raw = max(proto.graph.initializer, key=lambda t: len(t.raw_data)).raw_data
    start = bytes(data).index(raw)
    data[start:start + 256] = bytes(256)  # still a valid ONNX file: only the checksum can tell
    model.write_bytes(bytes(data))
    proc = tk("repo", "validate", str(repo))
    assert proc.returncode == 1 and "m/2/model.onnx: sha256: differs from the manifest" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert tk("repo", "validate", str(repo), "--no-checksums").returncode == 0


def test_validate_and_verify_flag_pycache_when_a_stub_wrote_into_a_version(repo: Path) -> None:
    cache = repo / "m" / "2" / "__pycache__"
    cache.mkdir()
    (cache / "model.cpython-311.pyc").write_bytes(b"\x00" * 16)
    assert verify_version(repo / "m" / "2") == ["__pycache__/ (not in the manifest)"]
    proc = tk("repo", "validate", str(repo))
    assert proc.returncode == 1
    assert "m/2/__pycache__/: manifest: is not listed in the version's manifest" in proc.stdout
    assert "PYTHONDONTWRITEBYTECODE" in proc.stdout


def test_repo_validate_flags_a_version_served_with_another_config(repo: Path) -> None:
    cfg = read_config(repo / "m" / "config.pbtxt")
    cfg.version_policy.specific.versions.append(1)  # version 1 was published with max batch 32, not 8
    from google.protobuf import text_format

    (repo / "m" / "config.pbtxt").write_text(text_format.MessageToString(cfg))
    proc = tk("repo", "validate", str(repo))
    assert proc.returncode == 1 and "names version 1, but version 1 was published with another config" in proc.stdout


# ------------------------------------------------------------------ item 22: lock and staging ownership


def test_repo_add_refuses_and_creates_nothing_when_the_lock_is_a_dangling_symlink(
        tmp_path: Path, digits_onnx: Path) -> None:
    target = tmp_path / "elsewhere" / "created-by-root"
    target.parent.mkdir()
    (tmp_path / ".repo.lock").symlink_to(target)
    one_error_line(tk("repo", "add", "m", "--repository", str(tmp_path / "repo"), "--onnx", str(digits_onnx)),
                   "symlink")
    assert not target.exists() and not (tmp_path / "repo" / "m").exists()


def test_repo_add_refuses_and_leaves_the_target_intact_when_the_lock_is_a_hard_link(
        tmp_path: Path, digits_onnx: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    os.link(precious, tmp_path / ".repo.lock")
    one_error_line(tk("repo", "add", "m", "--repository", str(tmp_path / "repo"), "--onnx", str(digits_onnx)),
                   "hard link")
    assert precious.read_text() == "keep me" and not (tmp_path / "repo" / "m").exists()


def test_repo_add_refuses_when_lock_or_staging_belongs_to_another_user(tmp_path: Path, digits_onnx: Path) -> None:
    lock = tmp_path / ".repo.lock"
    lock.touch()
    os.chown(lock, 65534, 65534)
    args = ("repo", "add", "m", "--repository", str(tmp_path / "repo"), "--onnx", str(digits_onnx))
    one_error_line(tk(*args), "belongs to user id 65534")
    lock.unlink()
    side = tmp_path / ".repo.staging"
    side.mkdir(mode=0o700)
    os.chown(side, 65534, 65534)
    one_error_line(tk(*args), "belongs to user id 65534")
    assert not (tmp_path / "repo" / "m").exists()


def test_labels_file_is_content_addressed_so_old_configs_keep_their_labels(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    first = read_live_config(repo / "m").output[0].label_filename
    before = (repo / "m" / first).read_bytes()
    letters = list("abcdefghij")
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False), labels=letters)
    live = read_live_config(repo / "m")
    assert live.output[0].label_filename == labels_filename(letters) != first
    assert (repo / "m" / labels_filename(letters)).read_text().split() == letters
    # version 1's config still names its own file, unchanged (a Triton loading it under that config finds it)
    assert (repo / "m" / first).read_bytes() == before
    assert np.array_equal(sorted(os.listdir(repo / "m")),
                          sorted(["1", "2", "config.pbtxt", first, labels_filename(letters)]))


def test_list_and_validate_report_unpublished_when_a_publish_was_killed_after_the_version_rename(
        repo: Path, digits_onnx: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _PUBLISH, str(repo), str(digits_onnx), "16", ""],
                          env={**os.environ, "TRITONKIT_FAULT_AT": "version_renamed"}, timeout=120)
    assert proc.returncode == -9 and version_numbers(repo / "m") == [1, 2, 3]
    listed = tk("repo", "list", "--repository", str(repo), "--json")
    rows = {r["version"]: r["status"] for r in json.loads(listed.stdout)}
    assert rows == {1: "not served (version policy)", 2: "served (default version)",
                    3: "unpublished (no config names it)"}
    v = tk("repo", "validate", str(repo))
    assert v.returncode == 0 and "warning: m/3: version: version 3 is unpublished (no config names it)" in v.stdout
    nxt = publish_onnx(repo, "m", digits_onnx, ServingOptions(max_batch_size=16, warmup=False))
    assert nxt.version == 4 and verify_version(repo / "m" / "3") == []  # never reused or modified


def test_python_api_deploy_refuses_and_changes_nothing_when_labels_would_shift_classes(tmp_path: Path) -> None:
    """The Python API publishes through the same checks as ``repo add``."""
    from contract.errors import UsageError
    from toolkit import create_deployment
    from trainers.models import create_model

    net = create_model("smallcnn", num_classes=3, in_channels=1).eval()
    config = {"repository": tmp_path / "repo", "name": "net", "input_shape": (1, 8, 8), "num_outputs": 3}
    create_deployment(net, config).deploy(tmp_path / "net.onnx")
    before = tree_digest(tmp_path / "repo")
    with pytest.raises(UsageError, match="line break"):
        create_deployment(net, {**config, "labels": ["cat", "dog\nbird", "fish"]}).deploy(tmp_path / "net.onnx")
    assert tree_digest(tmp_path / "repo") == before
