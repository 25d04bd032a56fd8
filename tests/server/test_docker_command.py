"""The container command and image choice (no Docker engine is needed to check them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import ServerError
from toolkit.serve.container import choose_image, docker_command

PORTS = {"http": 18000, "grpc": 18001, "metrics": 18002}


def test_docker_command_publishes_ports_only_on_localhost_and_mounts_repository_read_only(tmp_path: Path) -> None:
    cmd = docker_command(tmp_path, "nvcr.io/nvidia/tritonserver:24.09-py3", PORTS, gpus=False, shm_size="2g")
    assert cmd[:3] == ["docker", "run", "--rm"]
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


def test_docker_command_adds_gpus_and_keeps_admin_key_off_every_command_line_when_model_control_is_on(
        tmp_path: Path) -> None:
    from toolkit.serve.container import DockerServer

    cmd = docker_command(tmp_path, "img", PORTS, gpus=True, model_control="poll")
    assert cmd[cmd.index("--gpus") + 1] == "all"
    assert "--model-control-mode=poll" in cmd and "--repository-poll-secs=2" in cmd
    # The key comes from the docker client's environment (-e NAME without a value) and the
    # preloaded argv_key library puts it into Triton's flags inside the container.
    assert cmd[cmd.index("-e", cmd.index("LD_PRELOAD=/opt/tritonkit/argv_key.so") + 1) + 1] == "TRITONKIT_ADMIN_KEY"
    assert any(a.endswith(":/opt/tritonkit/argv_key.so:ro") for a in cmd)
    server = DockerServer(tmp_path, image="img", gpus=False, model_control="explicit")
    assert server.admin_value not in " ".join(docker_command(tmp_path, "img", PORTS, model_control="explicit"))
    assert server.child_env()["TRITONKIT_ADMIN_KEY"] == server.admin_value


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
