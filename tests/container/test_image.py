"""The CPU stand-in Triton image on a real podman: layout, content-hash tag, reuse, bad input, serving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from toolkit.serve.ports import free_port

CLI = [str(Path(sys.executable).parent / "tritonkit")]


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def _podman_run(podman: str, image: str, script: str) -> str:
    done = subprocess.run([podman, "run", "--rm", "--network=none", image, "bash", "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_image_has_the_ngc_layout_and_runs_as_non_root(container_engine: str, triton_image: str) -> None:
    out = _podman_run(container_engine, triton_image, """
        id -u; id -un; command -v tritonserver; pwd
        for f in /opt/tritonserver/bin/tritonserver /opt/tritonserver/backends/python/libtriton_python.so \
                 /opt/tritonserver/backends/python/triton_python_backend_utils.py \
                 /opt/tritonserver/backends/python/triton_python_backend_stub \
                 /opt/tritonserver/backends/onnxruntime/model.py; do test -f "$f" && echo "have $f"; done
        echo "missing libs: $(ldd /opt/tritonserver/bin/tritonserver \
              /opt/tritonserver/backends/python/triton_python_backend_stub | grep -c 'not found')"
        python3 -c 'import sys, numpy, onnxruntime, PIL; print(sys.version.split()[0], numpy.__version__)'
        python3 -c 'from toolkit.repository.validate import onnx_rules; print("rules", onnx_rules.__name__)'
        touch /opt/tritonserver/x 2>/dev/null && echo writable || echo read-only
    """).splitlines()
    assert out[0] != "0" and out[0] == "1000", out
    assert out[1] == "triton-server"
    assert out[2] == "/opt/tritonserver/bin/tritonserver"
    assert out[3] == "/opt/tritonserver"
    assert sum(line.startswith("have ") for line in out) == 5, out
    assert "missing libs: 0" in out
    python, numpy_version = next(line for line in out if line.startswith("3.")).split()
    assert python.startswith("3.11.") and int(numpy_version.split(".")[0]) < 2
    assert "rules toolkit.repository.validate.onnx_rules" in out
    assert out[-1] == "read-only"  # the non-root user cannot change the server


def test_tag_is_the_content_hash(triton_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.serve import image, install

    plan = image.plan_image()
    assert plan.tag == triton_image
    info = image.image_info(triton_image)
    assert info is not None and info["labels"]["tritonkit.content-hash"] == plan.digest
    assert triton_image.startswith("localhost/tritonkit/tritonserver-cpu:2.51.0-")
    # A changed backend source is another image.
    changed = tmp_path / "backends"
    shutil.copytree(install._BACKEND_SOURCE, changed)
    model = changed / "onnxruntime" / "model.py"
    model.write_text(model.read_text() + "\n# changed\n")
    monkeypatch.setattr(install, "_BACKEND_SOURCE", changed)
    assert image.plan_image().tag != plan.tag
    monkeypatch.undo()
    assert image.plan_image().tag == plan.tag


def test_build_twice_reuses_the_image(triton_image: str) -> None:
    started = time.monotonic()
    done = _cli("image", "build", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tag"] == triton_image and result["built"] is False
    assert result["size"] > 100e6
    assert time.monotonic() - started < 30
    shown = json.loads(_cli("image", "show", "--json").stdout)
    assert shown["exists"] is True and shown["tag"] == triton_image and shown["size"] == result["size"]


def _only(tmp_path: Path, *names: str) -> str:
    """A PATH holding only the named host commands (and python), so the others are missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in (*names, "ldd", "tar"):
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    return str(bin_dir)


@pytest.mark.parametrize("present, missing", [((), "podman is not installed"),
                                              (("podman",), "debootstrap is not installed")])
def test_missing_tools_are_one_line(triton_image: str, tmp_path: Path, present: tuple[str, ...],
                                    missing: str) -> None:
    env = {**os.environ, "PATH": _only(tmp_path, *present)}
    done = _cli("image", "build", "--force", env=env, timeout=120)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and missing in lines[0], done.stderr
    assert "setup-containers.sh" in lines[0]
    shown = _cli("image", "show", "--json", env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert facts["tag"].startswith("localhost/tritonkit/tritonserver-cpu:2.51.0-")
    if present:  # podman is there: the image is seen (debootstrap only matters to a build)
        assert facts["exists"] is True and facts["engine_problem"] is None
    else:
        assert facts["exists"] is False and "podman is not installed" in facts["engine_problem"]


def _ready(url: str, timeout: float) -> float:
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s")


def test_image_serves_the_default_repository_like_onnxruntime(container_engine: str, triton_image: str,
                                                              digits_build: dict[str, Path]) -> None:
    import onnxruntime as ort
    import tritonclient.http as httpclient

    repo = digits_build["repository"]
    port = free_port()
    container = f"tritonkit-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [container_engine, "run", "-d", "--rm", "--name", container, "-p", f"127.0.0.1:{port}:8000",
         "-v", f"{repo}:/models:ro", "--shm-size=256m", triton_image,
         "tritonserver", "--model-repository=/models", "--strict-readiness=true", "--exit-on-error=true"],
        check=True, capture_output=True, text=True, timeout=120)
    try:
        try:
            _ready(f"http://127.0.0.1:{port}", timeout=120)
        except AssertionError:
            logs = subprocess.run([container_engine, "logs", container], capture_output=True, text=True, timeout=60)
            raise AssertionError(logs.stdout[-2000:] + logs.stderr[-2000:]) from None
        rng = np.random.default_rng(7)
        batch = rng.uniform(0, 16, size=(8, 1, 8, 8)).astype(np.float32)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        tensor = httpclient.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        served = client.infer("digits", [tensor]).as_numpy("logits")
        # The ensemble: the python preprocessing model (numpy, Pillow in the image) then the classifier.
        spec = json.loads(client.get_model_config("digits_image")["parameters"]["tritonkit.model_spec"]["string_value"])
        pixels = rng.integers(0, 17, size=(4, 8, 8, 1), dtype=np.uint8)
        raw = httpclient.InferInput("IMAGE", list(pixels.shape), "UINT8")
        raw.set_data_from_numpy(pixels)
        via_ensemble = client.infer("digits_image", [raw]).as_numpy("logits")
        big = httpclient.InferInput("IMAGE", [1, 32, 32, 1], "UINT8")  # resized to 8x8 by Pillow
        big.set_data_from_numpy(rng.integers(0, 17, size=(1, 32, 32, 1), dtype=np.uint8))
        assert client.infer("digits_image", [big]).as_numpy("logits").shape == (1, 10)
        client.close()
        session = ort.InferenceSession(str(digits_build["onnx"]), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        expected = session.run(None, {input_name: batch})[0]
        np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)
        assert served.argmax(1).tolist() == expected.argmax(1).tolist()
        tensor_in = ((pixels.transpose(0, 3, 1, 2).astype(np.float32) * spec["scale"] - spec["mean"][0])
                     / spec["std"][0]).astype(np.float32)
        np.testing.assert_allclose(via_ensemble, session.run(None, {input_name: tensor_in})[0], rtol=1e-4, atol=1e-4)
    finally:
        removed = subprocess.run([container_engine, "rm", "--force", "--time", "5", container], capture_output=True,
                                 text=True, timeout=120)
    assert removed.returncode == 0 and container in removed.stdout, removed.stderr  # rm --force of none is 0 too
    gone = subprocess.run([container_engine, "container", "exists", container], capture_output=True, text=True,
                          timeout=60)
    assert gone.returncode == 1, gone.stderr  # 1: no such container (125 would be an engine error)


def test_an_engine_that_cannot_run_is_one_line(container_engine: str, tmp_path: Path) -> None:
    """podman without the set-up's containers.conf (its default rlimits): refused in one line, exit 3."""
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers]\n")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    probe = subprocess.run([container_engine, "run", "--rm", "--network=none", "localhost/tritonkit/engine-probe:1",
                            "/bin/true"], capture_output=True, text=True, env=env, timeout=120)
    if probe.returncode == 0:
        pytest.skip("podman runs containers here even with its default rlimits: nothing to refuse")
    done = _cli("image", "build", "--force", env=env, timeout=120)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: podman cannot run a container here"), done.stderr
    assert "setup-containers.sh" in lines[0]


_RACE = """
import dataclasses, json, sys
from toolkit.serve import image
plan = image.plan_image()
image.plan_image = lambda: dataclasses.replace(plan, tag=sys.argv[1])
result = image.build_image(prune=False)  # a test tag: leave the real stand-in and the caches alone
print(json.dumps({"built": result.built, "tag": result.tag}))
"""


def test_two_processes_build_once(container_engine: str, triton_image: str) -> None:
    """Two builders of a missing tag at the same time (two test workers): one builds, the other reuses it."""
    tag = f"{triton_image}-race{uuid.uuid4().hex[:6]}"
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, tag], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
        assert sorted(r["built"] for r in results) == [False, True], results
        assert {r["tag"] for r in results} == {tag}
        listed = subprocess.run([container_engine, "images", "--format", "{{.Repository}}:{{.Tag}}"],
                                capture_output=True, text=True, timeout=60).stdout.split()
        assert listed.count(tag) == 1
    finally:
        subprocess.run([container_engine, "rmi", tag], capture_output=True, timeout=120)


def test_an_interrupted_debootstrap_is_cleaned_up_without_touching_its_mounts(tmp_path: Path) -> None:
    """A killed debootstrap leaves proc (and device binds) mounted in its target: unmounted, never deleted through."""
    from toolkit.serve.image import _mounts_under, _remove_stale

    if os.geteuid() != 0:
        pytest.skip("mounting proc needs root")
    target = tmp_path / "home" / ".rootfs-bookworm-x.abc" / "root"
    (target / "proc").mkdir(parents=True)
    (target / "etc").mkdir()
    (target / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    subprocess.run(["mount", "-t", "proc", "proc", str(target / "proc")], check=True, timeout=30)
    try:
        assert _mounts_under(tmp_path) == [str((target / "proc").resolve())]
        said: list[str] = []
        _remove_stale(tmp_path / "home", said.append)
        assert said == [] and not target.exists() and _mounts_under(tmp_path) == []
        assert Path("/proc/self/status").is_file()  # the host's proc is untouched
    finally:
        subprocess.run(["umount", "-l", str(target / "proc")], capture_output=True, timeout=30)
