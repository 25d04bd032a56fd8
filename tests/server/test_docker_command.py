"""The container command and image choice (no Docker engine is needed to check them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contract.errors import ServerError
from toolkit.serve.container import choose_image, docker_command

PORTS = {"http": 18000, "grpc": 18001, "metrics": 18002}


def test_docker_command_publishes_ports_only_on_localhost_and_mounts_repository_read_only(tmp_path: Path) -> None:
    cmd = docker_command(tmp_path, "nvcr.io/nvidia/tritonserver:24.09-py3", PORTS, gpus=False, shm_size="2g")
    assert cmd[:5] == ["docker", "run", "-i", "--rm", "--init"]
    assert "--gpus" not in cmd
    joined = " ".join(cmd)
    for host_port, inside in ((18000, 8000), (18001, 8001), (18002, 8002)):
        assert f"-p 127.0.0.1:{host_port}:{inside}" in joined
    assert f"-v {tmp_path.resolve()}:/models:ro" in joined
    assert "--shm-size 2g" in joined
    tail = cmd[cmd.index("tritonserver"):]
    for flag in ("--model-repository=/models", "--model-control-mode=none", "--strict-readiness=true",
                 "--exit-on-error=true"):
        assert flag in tail
    assert "--disable-auto-complete-config" not in tail  # auto-complete on, as in stock Triton
    assert "--disable-auto-complete-config" in docker_command(tmp_path, "img", PORTS, strict_config=True)
    assert [a for a in tail if "restricted" in a] == [
        "--http-restricted-api=shared-memory,logging,trace,model-repository:tritonkit-admin-key=@TRITONKIT_ADMIN_KEY@",
        "--grpc-restricted-protocol=shared-memory,logging,trace,model-repository:tritonkit-admin-key=@TRITONKIT_ADMIN_KEY@",
    ]


def test_docker_command_adds_gpus_and_keeps_admin_key_out_of_command_and_environment_when_model_control_is_on(
        tmp_path: Path) -> None:
    from toolkit.serve.container import DockerServer
    from toolkit.serve.engine import Engine

    cmd = docker_command(tmp_path, "img", PORTS, gpus=True, model_control="poll")
    assert cmd[cmd.index("--gpus") + 1] == "all"
    podman = docker_command(tmp_path, "img", PORTS, gpus=True, program="/usr/bin/podman")
    assert "--gpus" not in podman and podman[podman.index("--device") + 1] == "nvidia.com/gpu=all"
    assert "--model-control-mode=poll" in cmd and "--repository-poll-secs=2" in cmd
    # The key is read from the client's standard input (-i) by the preloaded argv_key library: the
    # container's configuration names only the descriptor, never the key or its variable.
    assert "-e" in cmd and "TRITONKIT_ADMIN_KEY_FD=0" in cmd and "TRITONKIT_ADMIN_KEY" not in cmd
    assert "LD_PRELOAD=/opt/tritonkit/argv_key.so" in cmd
    assert any(a.endswith(":/opt/tritonkit/argv_key.so:ro") for a in cmd)
    server = DockerServer(tmp_path, image="img", gpus=False, model_control="explicit",
                          engine=Engine("docker", "/usr/local/bin/docker"))
    assert server.admin_value not in " ".join(server.command())
    assert "TRITONKIT_ADMIN_KEY" not in server.child_env()
    assert f"io.tritonkit.uid={os.geteuid()}" in server.command()


def test_docker_command_mounts_nothing_and_joins_host_network_when_repository_is_loopback_object_storage() -> None:
    cmd = docker_command("s3://127.0.0.1:9000/models/repo", "img", PORTS, network_host=True)
    assert "--model-repository=s3://127.0.0.1:9000/models/repo" in cmd
    assert not [a for a in cmd if a.endswith(":/models:ro")]
    # The machine's network: nothing published, Triton itself binds loopback and the chosen ports.
    assert cmd[cmd.index("--network") + 1] == "host" and "-p" not in cmd
    assert "--http-address=127.0.0.1" in cmd and "--http-port=18000" in cmd and "--metrics-port=18002" in cmd


@pytest.mark.parametrize(
    ("records", "image"),
    [
        ([], "nvcr.io/nvidia/tritonserver:24.09-py3"),
        ([{"tensorrt_version": "10.7.0.23"}], "nvcr.io/nvidia/tritonserver:24.12-py3"),
        ([{"tensorrt_version": "10.4.0"}, {"tensorrt_version": "10.4.0.26"}], "nvcr.io/nvidia/tritonserver:24.09-py3"),
        ([{"tensorrt_version": "10.8.0.43"}], "nvcr.io/nvidia/tritonserver:25.02-py3"),
    ],
)
def test_choose_image_matches_plan_tensorrt_when_records_name_a_version(records, image) -> None:
    assert choose_image(records) == image


def test_choose_image_refuses_when_plans_disagree_or_version_is_unknown() -> None:
    with pytest.raises(ServerError, match="10.4, 10.7"):
        choose_image([{"tensorrt_version": "10.4.0"}, {"tensorrt_version": "10.7.0"}])
    with pytest.raises(ServerError, match="no known Triton container ships TensorRT 8.6"):
        choose_image([{"tensorrt_version": "8.6.1"}])


def test_argv_key_library_reads_key_and_credentials_from_stdin_and_keeps_them_out_of_proc_environ() -> None:
    """The container hand-off without a container: TRITONKIT_ADMIN_KEY_FD=0 names standard input."""
    import subprocess
    import sys

    from toolkit.serve.embedded import KEY_PLACEHOLDER
    from toolkit.serve.install import argv_key_library

    probe = ("import os, sys\n"
             "env = open(f'/proc/{os.getpid()}/environ', 'rb').read()\n"
             "print(sys.argv[1]); print(os.environ.get('AWS_SECRET_ACCESS_KEY')); print(b'zq7' in env)\n"
             "print(repr(sys.stdin.read())); print('TRITONKIT_ADMIN_KEY_FD' in os.environ)\n")
    env = {"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(argv_key_library()), "TRITONKIT_ADMIN_KEY_FD": "0"}
    flag = f"--http-restricted-api=logging:h={KEY_PLACEHOLDER}"
    out = subprocess.run([sys.executable, "-c", probe, flag], input="k3y\nAWS_SECRET_ACCESS_KEY=zq7=v\n\nafter",
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    # The key in the flag, the credential set (but not in the kernel's environment copy), stdin then empty.
    assert out == ["--http-restricted-api=logging:h=k3y", "zq7=v", "False", "''", "False"]
    refused = subprocess.run([sys.executable, "-c", "print('ran')", flag], input="k3y\nLD_PRELOAD=/x\n\n", env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 111 and "ran" not in refused.stdout and "AWS_, GOOGLE_ or AZURE_" in refused.stderr
    empty = subprocess.run([sys.executable, "-c", "print('ran')", flag], input="", env=env, capture_output=True,
                           text=True, timeout=60)
    assert empty.returncode == 111 and "ran" not in empty.stdout


def test_serve_docker_runtime_exits_3_in_one_line_when_no_engine_answers_the_docker_cli(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    if shutil.which("docker") is None:
        pytest.skip("no docker CLI here: the case needs one whose engine does not answer")
    (tmp_path / "model_repository").mkdir()
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "TRITONKIT_CONTAINER_ENGINE": "docker",
           "XDG_STATE_HOME": str(tmp_path / "state")}
    r = subprocess.run([str(Path(sys.executable).parent / "tritonkit"), "serve", "--runtime", "docker"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 3 and len(lines) == 1, r.stderr
    assert "docker does not answer" in lines[0] and "no-engine.sock" in lines[0] and "--runtime embedded" in lines[0]
