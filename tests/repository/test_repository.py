"""Publishing versions: atomic, never in place, config from the graph, faults leave nothing half-done."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import text_format

from contract.errors import RepositoryError, UsageError
from toolkit.repository.config import ServingOptions, build_config, read_config
from toolkit.repository.manifest import labels_filename, verify_version
from toolkit.repository.publish import publish_onnx, publish_plan
from toolkit.repository.storage import version_numbers
from toolkit.repository.versions import list_models, prune, rollback

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime: 'unchanged' means this dict is equal."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_publish_creates_next_version_and_never_touches_old_ones(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    first = publish_onnx(repo, "m", digits_onnx)
    v1_before = tree_state(first.path)
    t0 = time.perf_counter()
    second = publish_onnx(repo, "m", digits_onnx, ServingOptions(max_batch_size=16))
    elapsed = time.perf_counter() - t0
    assert (first.version, second.version) == (1, 2)
    assert tree_state(first.path) == v1_before
    assert verify_version(first.path) == [] and verify_version(second.path) == []
    assert read_config(repo / "m" / "config.pbtxt").max_batch_size == 16
    assert elapsed < 5  # the figure is < 2 s; generous here for a loaded CI machine


def test_config_is_read_from_graph_and_parses_back_identically(tmp_path: Path, digits_onnx: Path) -> None:
    opts = ServingOptions(max_batch_size=32, preferred_batch_sizes=[8, 16], max_queue_size=64, instances=2,
                          keep_versions=2, max_queue_delay_us=500)
    pub = publish_onnx(tmp_path / "repo", "digits", digits_onnx, opts)
    cfg = read_config(pub.path.parent / "config.pbtxt")
    assert cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 32
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("input", [1, 8, 8])]
    label_file = labels_filename([str(i) for i in range(10)])
    assert [(o.name, list(o.dims), o.label_filename) for o in cfg.output] == [("logits", [10], label_file)]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 16]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert cfg.dynamic_batching.default_queue_policy.max_queue_size == 64
    # the live config pins the versions it was written for; the manifest keeps the requested policy
    assert cfg.instance_group[0].count == 2 and list(cfg.version_policy.specific.versions) == [1]
    assert cfg.model_warmup[0].batch_size == 32 and cfg.model_warmup[0].inputs["input"].random_data
    labels = (pub.path.parent / label_file).read_text().splitlines()
    assert labels == [str(i) for i in range(10)]
    manifest = json.loads((pub.path / "manifest.json").read_text())
    recorded = text_format.Parse(manifest["config"], type(cfg)())
    assert recorded.version_policy.latest.num_versions == 2
    recorded.ClearField("version_policy")
    cfg.ClearField("version_policy")
    assert recorded == cfg


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ServingOptions(max_batch_size=8, preferred_batch_sizes=[16]), "outside [1, max_batch_size=8]"),
        (ServingOptions(max_batch_size=-1), "negative"),
        (ServingOptions(instances=0), "at least 1"),
        (ServingOptions(dynamic_batching=False, preferred_batch_sizes=[4]), "needs dynamic batching"),
    ],
)
def test_publish_refuses_inconsistent_options_and_writes_nothing(
    tmp_path: Path, digits_onnx: Path, options: ServingOptions, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        publish_onnx(tmp_path / "repo", "m", digits_onnx, options)
    assert not (tmp_path / "repo" / "m").exists()


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "bad\nname", "", ".hidden"])
def test_publish_refuses_unsafe_model_names(tmp_path: Path, digits_onnx: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid"):
        publish_onnx(tmp_path / "repo", name, digits_onnx)
    assert list((tmp_path).iterdir()) == [] or not any((tmp_path / "repo").glob("*"))


def test_publish_refuses_wrong_label_count(tmp_path: Path, digits_onnx: Path) -> None:
    with pytest.raises(UsageError, match="3 labels given for an output of 10 classes"):
        publish_onnx(tmp_path / "repo", "m", digits_onnx, labels=["a", "b", "c"])


def test_publish_refuses_empty_model_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(RepositoryError, match="ONNX file is empty"):
        publish_onnx(tmp_path / "repo", "m", empty)


def _record(max_batch: int) -> dict:
    return {"tensorrt_version": "10.4.0", "max_batch_size": max_batch,
            "inputs": [{"name": "input", "dtype": "float32", "shape": [1, 8, 8]}],
            "outputs": [{"name": "logits", "dtype": "float32", "shape": [10]}],
            "profiles": [{"input": {"min": [1, 1, 8, 8], "opt": [8, 1, 8, 8], "max": [max_batch, 1, 8, 8]}}]}


def test_plan_max_batch_above_profile_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"engine")
    with pytest.raises(UsageError, match="exceeds the plan's profile maximum 8"):
        publish_plan(tmp_path / "repo", "m_trt", {"8.6": plan}, {"8.6": _record(8)}, ServingOptions(max_batch_size=32))
    assert not (tmp_path / "repo" / "m_trt").exists()


def test_plans_for_several_gpus_get_cc_model_filenames(tmp_path: Path) -> None:
    plans = {}
    for cc in ("8.0", "8.6"):
        plans[cc] = tmp_path / f"{cc}.plan"
        plans[cc].write_bytes(cc.encode())
    pub = publish_plan(tmp_path / "repo", "m_trt", plans, {cc: _record(16) for cc in plans},
                       ServingOptions(max_batch_size=16, kind="gpu", profiles=["0"]))
    cfg = read_config(pub.path.parent / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan"
    assert dict(cfg.cc_model_filenames) == {"8.0": "model_8_0.plan", "8.6": "model_8_6.plan"}
    assert list(cfg.instance_group[0].profile) == ["0"]
    assert sorted(p.name for p in pub.path.glob("*.plan")) == ["model_8_0.plan", "model_8_6.plan"]


def test_onnx_on_gpu_can_enable_tensorrt_accelerator() -> None:
    from contract.spec import ModelSpec, TensorSpec

    spec = ModelSpec(inputs=(TensorSpec("x", (3, 4, 4)),), outputs=(TensorSpec("y", (2,)),))
    cfg = build_config("m", spec, "onnxruntime_onnx",
                       ServingOptions(kind="gpu", tensorrt_accelerator=True, label_filename=None))
    acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"


_KILL_SCRIPT = """
import sys
from toolkit.repository.publish import publish_onnx
publish_onnx(sys.argv[1], "m", sys.argv[2])
"""


@pytest.mark.parametrize("step", ["staged", "fsynced", "version_renamed", "config_replaced"])
def test_publish_killed_at_each_step_leaves_no_half_version(tmp_path: Path, digits_onnx: Path, step: str) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx)
    before = tree_state(repo / "m" / "1")
    env = {**os.environ, "TRITONKIT_FAULT_AT": step}
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(repo), str(digits_onnx)], env=env)
    assert proc.returncode == -9  # killed by the fault hook
    assert tree_state(repo / "m" / "1") == before
    for v in version_numbers(repo / "m"):
        assert verify_version(repo / "m" / str(v)) == [], f"version {v} is corrupt after a kill at {step}"
    # config.pbtxt always parses and names the model
    assert read_config(repo / "m" / "config.pbtxt").name == "m"
    nxt = publish_onnx(repo, "m", digits_onnx)
    assert verify_version(nxt.path) == [] and nxt.version == max(version_numbers(repo / "m"))


def test_four_concurrent_writers_get_four_distinct_versions(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    procs = [subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(repo), str(digits_onnx)]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert version_numbers(repo / "m") == [1, 2, 3, 4]
    assert all(verify_version(repo / "m" / str(v)) == [] for v in range(1, 5))


def _mount_tmpfs(mnt: Path, size: str) -> None:
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")


def test_publish_into_read_only_repository_fails_cleanly(tmp_path: Path, digits_onnx: Path) -> None:
    """A read-only filesystem (a tmpfs remounted ro) refuses writes even to root."""
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "4m")
    try:
        repo = mnt / "repo"
        publish_onnx(repo, "m", digits_onnx)
        before = tree_state(repo)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(RepositoryError, match="Read-only file system|repository is unchanged"):
            publish_onnx(repo, "m", digits_onnx)
        assert tree_state(repo) == before
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_publish_on_full_disk_fails_cleanly_and_repository_is_unchanged(tmp_path: Path, digits_onnx: Path) -> None:
    """A tiny tmpfs stands in for a full disk (needs root to mount; skipped otherwise)."""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "600k")
    try:
        repo = mnt / "repo"
        publish_onnx(repo, "m", digits_onnx)  # ~230 KB: fits once
        before = tree_state(repo)
        with pytest.raises(RepositoryError, match="repository is unchanged"):
            for _ in range(5):
                publish_onnx(repo, "m", digits_onnx)
                before = tree_state(repo)
        assert tree_state(repo) == before
        assert all(verify_version(repo / "m" / str(v)) == [] for v in version_numbers(repo / "m"))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_rollback_publishes_copy_and_prune_keeps_newest(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx)
    publish_onnx(repo, "m", digits_onnx, ServingOptions(max_batch_size=8))
    rb = rollback(repo, "m", to=1)
    assert rb.version == 3
    assert read_config(repo / "m" / "config.pbtxt").max_batch_size == 32
    assert json.loads((rb.path / "manifest.json").read_text())["rolled_back_from"] == 1
    assert prune(repo, "m", keep=2) == [1]
    assert version_numbers(repo / "m") == [2, 3]
    with pytest.raises(RepositoryError, match="versions present"):
        rollback(repo, "m", to=1)


def test_repo_cli_add_list_and_errors(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    ok = subprocess.run([TRITONKIT, "repo", "add", "m", "--repository", str(repo), "--onnx", str(digits_onnx),
                         "--preferred-batch", "8,16", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["version"] == 1
    listed = subprocess.run([TRITONKIT, "repo", "list", "--repository", str(repo), "--json"],
                            capture_output=True, text=True)
    rows = json.loads(listed.stdout)
    assert [(r["model"], r["version"], r["platform"], r["max_batch_size"]) for r in rows] == [
        ("m", 1, "onnxruntime_onnx", 32)]
    bad = subprocess.run([TRITONKIT, "repo", "add", "m", "--repository", str(repo), "--onnx", str(digits_onnx),
                          "--preferred-batch", "64"], capture_output=True, text=True)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "64" in bad.stderr
    assert version_numbers(repo / "m") == [1]


def test_list_models_shows_metrics_from_manifest(digits_build: dict) -> None:
    rows = {r["model"]: r for r in list_models(digits_build["repository"])}
    assert set(rows) == {"digits", "digits_image", "digits_preprocess"}
    assert rows["digits"]["metrics"]["test_accuracy"] >= 0.97
    assert rows["digits_image"]["platform"] == "ensemble"


def test_repo_add_plan_reads_io_from_record_and_refuses_batch_above_profile(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"engine bytes")
    (tmp_path / "m.plan.json").write_text(json.dumps({**_record(8), "compute_capability": "8.6"}))
    bad = subprocess.run([TRITONKIT, "repo", "add", "m_trt", "--repository", str(tmp_path / "repo"), "--plan",
                          str(plan), "--max-batch", "32"], capture_output=True, text=True)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "profile maximum 8" in bad.stderr
    ok = subprocess.run([TRITONKIT, "repo", "add", "m_trt", "--repository", str(tmp_path / "repo"), "--plan",
                         str(plan), "--max-batch", "8", "--no-warmup"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    cfg = read_config(tmp_path / "repo" / "m_trt" / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 8
    assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_GPU
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("input", [1, 8, 8])]


@pytest.mark.server
def test_repo_add_load_switches_version_and_broken_version_keeps_old_one(
        tmp_path: Path, digits_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contract.errors import ServerError
    from toolkit.serve.ports import free_port
    from toolkit.serve.runner import load_detached
    from toolkit.serve.state import run_dir_for

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))  # this test's servers only
    repo = tmp_path / "repo"
    publish_onnx(repo, "m", digits_onnx, ServingOptions(warmup=False))
    ports = [str(free_port()) for _ in range(3)]
    serve = [TRITONKIT, "serve", "--repository", str(repo), "--model-control", "explicit", "--http-port", ports[0],
             "--grpc-port", ports[1], "--metrics-port", ports[2]]
    started = subprocess.run([*serve, "--detach"], capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert started.returncode == 0, started.stderr
    try:
        # another repository than the served one: refused before anything is published (it used to reload
        # the served repository's model and report success)
        other = tmp_path / "other"
        publish_onnx(other, "m", digits_onnx, ServingOptions(warmup=False))
        wrong = subprocess.run([TRITONKIT, "repo", "add", "m", "--repository", str(other), "--onnx", str(digits_onnx),
                                "--force", "--load"], capture_output=True, text=True, cwd=tmp_path)
        assert wrong.returncode != 0 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
        assert f"serves {repo}, not {other}" in wrong.stderr and "nothing was published" in wrong.stderr
        assert version_numbers(other / "m") == [1]
        add = subprocess.run([TRITONKIT, "repo", "add", "m", "--repository", str(repo), "--onnx", str(digits_onnx),
                              "--no-warmup", "--force", "--load", "--json"], capture_output=True, text=True,
                             cwd=tmp_path)
        assert add.returncode == 0, add.stderr
        loaded = json.loads(add.stdout)["loaded"]
        assert (2, "READY") in {(int(m["version"]), m["state"]) for m in loaded}
        listed = subprocess.run([TRITONKIT, "repo", "list", "--repository", str(repo)], capture_output=True,
                                text=True, cwd=tmp_path).stdout.splitlines()
        assert listed[2].split()[1] == "2" and f"loaded on 127.0.0.1:{ports[1]}" in listed[2], listed
        # a broken version 3 (truncated model file), named by the config, must not replace version 2
        (repo / "m" / "3").mkdir()
        (repo / "m" / "3" / "model.onnx").write_bytes((repo / "m" / "2" / "model.onnx").read_bytes()[:100])
        cfg = read_config(repo / "m" / "config.pbtxt")
        cfg.version_policy.specific.versions.append(3)
        (repo / "m" / "config.pbtxt").write_text(text_format.MessageToString(cfg))
        with pytest.raises(ServerError, match="was not loaded.*still serving version 2"):
            load_detached("m", run_dir_for(repo))
    finally:
        subprocess.run([TRITONKIT, "serve", "stop", "--repository", str(repo)], cwd=tmp_path, capture_output=True,
                       timeout=60)


def test_rollback_refuses_manifest_naming_files_outside_the_version(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    pub = publish_onnx(repo, "m", digits_onnx)
    manifest = json.loads((pub.path / "manifest.json").read_text())
    manifest["files"]["../../../escaped.txt"] = "0" * 64
    (pub.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RepositoryError, match="outside the version folder"):
        rollback(repo, "m", to=1)
    assert not (tmp_path / "escaped.txt").exists() and version_numbers(repo / "m") == [1]


def test_rollback_refuses_modified_or_unreadable_version(tmp_path: Path, digits_onnx: Path) -> None:
    repo = tmp_path / "repo"
    pub = publish_onnx(repo, "m", digits_onnx)
    publish_onnx(repo, "m", digits_onnx)
    (pub.path / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(RepositoryError, match="differ from the manifest"):
        rollback(repo, "m", to=1)
    (pub.path / "manifest.json").write_text("{not json")
    with pytest.raises(RepositoryError, match="manifest is not JSON"):
        rollback(repo, "m", to=1)
    assert version_numbers(repo / "m") == [1, 2]


def test_version_numbers_ignore_non_ascii_digits_and_leading_zeros(tmp_path: Path) -> None:
    for name in ("1", "2", "010", "0", "²", "١", "v3"):
        (tmp_path / name).mkdir()
    assert version_numbers(tmp_path) == [1, 2]


def test_plan_record_of_another_build_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"engine bytes")
    with pytest.raises(RepositoryError, match="sha256 differs"):
        publish_plan(tmp_path / "repo", "m_trt", {"8.6": plan}, {"8.6": {**_record(8), "sha256": "0" * 64}},
                     ServingOptions(max_batch_size=8, kind="gpu"))
