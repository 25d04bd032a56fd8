"""What `tritonkit serve --runtime docker` refuses before any container starts, in one line each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from toolkit.serve.ports import free_port

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def test_repository_the_image_user_cannot_read_is_refused_with_the_chmod_that_fixes_it(
        triton_image: str, container_engine: str, tmp_path: Path) -> None:
    repo = tmp_path / "private_repository"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "config.pbtxt").write_text('backend: "python"\n')
    os.chmod(repo, 0o700)  # a private folder: the image's non-root user cannot enter it
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), TRITONKIT_CONTAINER_ENGINE="podman")
    ports = [str(free_port()) for _ in range(3)]
    r = subprocess.run([TRITONKIT, "serve", "--runtime", "docker", "--image", triton_image, "-r", str(repo),
                        "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]],
                       capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    assert f"chmod -R a+rX {repo}" in lines[0] and "triton-server" in lines[0]
    names = subprocess.run([container_engine, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           timeout=30).stdout
    assert f"-{ports[0]}-" not in names  # nothing was started


def test_image_the_engine_lacks_is_refused_in_one_line_naming_the_way_out(container_engine: str,
                                                                          tmp_path: Path) -> None:
    repo = tmp_path / "model_repository"
    (repo / "m").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), TRITONKIT_CONTAINER_ENGINE="podman")
    ports = [str(free_port()) for _ in range(3)]
    r = subprocess.run([TRITONKIT, "serve", "--runtime", "docker", "--image", "localhost/tritonkit/absent:0", "-r",
                        str(repo), "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]],
                       capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert r.returncode != 0 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: `podman run` exited") and "localhost/tritonkit/absent:0" in lines[0]
    assert "tritonkit image build" in lines[0]
