"""Serve a repository with NVIDIA's Triton container: the command, the image, the engine check.

The container runs the native C++ backends (TensorRT, ONNX Runtime), so it is the runtime for
TensorRT plans. A plan runs only on the TensorRT version that built it, so :func:`choose_image`
picks the container release whose TensorRT matches the plans' build records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from contract.errors import MissingDependencyError, ServerError
from toolkit.gpus import gpu_visible
from toolkit.serve.embedded import KEY_VARIABLE, EmbeddedServer, safe_flags
from toolkit.serve.install import argv_key_library

IMAGE_REPO = "nvcr.io/nvidia/tritonserver"
# Triton container release -> the TensorRT it ships (NVIDIA's framework support matrix).
RELEASE_TENSORRT: dict[str, str] = {
    "24.05": "10.0",
    "24.06": "10.1",
    "24.07": "10.2",
    "24.08": "10.3",
    "24.09": "10.4",
    "24.10": "10.5",
    "24.11": "10.6",
    "24.12": "10.7",
    "25.01": "10.8",
    "25.02": "10.8",
}
DEFAULT_RELEASE = "24.09"
CONTAINER_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
CONTAINER_REPOSITORY = "/models"
CONTAINER_ARGV_KEY = "/opt/tritonkit/argv_key.so"


def image_for_release(release: str) -> str:
    return f"{IMAGE_REPO}:{release}-py3"


def _major_minor(version: str) -> str:
    return ".".join(str(version).strip().split(".")[:2])


def _plan_tensorrt(record: Any) -> str | None:
    if isinstance(record, Mapping):
        value = record.get("tensorrt_version") or record.get("tensorrt")
    else:
        value = getattr(record, "tensorrt_version", None)
    return str(value) if value else None


def choose_image(plan_records: Iterable[Any] = ()) -> str:
    """The container image whose TensorRT can run every plan (the default release when none).

    ``plan_records`` are the build records of the repository's plans (mappings or objects with a
    ``tensorrt_version`` such as ``"10.4.0.26"``). The latest release with that TensorRT wins.

    Raises:
        ServerError: plans were built with different TensorRT versions, or with one no known
            release ships.
    """
    wanted = sorted({_major_minor(v) for v in map(_plan_tensorrt, plan_records) if v})
    if not wanted:
        return image_for_release(DEFAULT_RELEASE)
    if len(wanted) > 1:
        raise ServerError(
            f"plans were built with TensorRT {', '.join(wanted)}; one container runs one TensorRT, "
            "so rebuild the plans with one version"
        )
    releases = [r for r, trt in RELEASE_TENSORRT.items() if trt == wanted[0]]
    if not releases:
        known = ", ".join(f"{r}={t}" for r, t in RELEASE_TENSORRT.items())
        raise ServerError(
            f"no known Triton container ships TensorRT {wanted[0]} (known: {known}); pass --image "
            "with the matching release or rebuild the plans"
        )
    return image_for_release(max(releases))


def docker_command(
    repository: str | os.PathLike[str],
    image: str,
    ports: Mapping[str, int],
    host: str = "127.0.0.1",
    gpus: bool = False,
    model_control: str = "none",
    shm_size: str = "1g",
    *,
    name: str | None = None,
    argv_key_lib: str | os.PathLike[str] | None = None,
    poll_secs: int = 2,
    strict_config: bool = False,
) -> list[str]:
    """``docker run`` for Triton: repository read-only, ports published only on ``host``.

    ``ports`` maps ``http``/``grpc``/``metrics`` to host ports. Inside the container Triton binds
    all interfaces (needed for publishing); only ``host`` on the machine reaches it.

    The admin key is on no command line, neither ``docker run``'s nor tritonserver's: ``-e
    TRITONKIT_ADMIN_KEY`` (name only) copies it from the environment of the ``docker`` client, which
    the caller sets, and the ``argv_key`` library (``argv_key_lib``, mounted read-only and preloaded)
    puts it into Triton's flags before ``main``. It is visible to whoever may use the Docker engine
    (``docker inspect``), who is root-equivalent anyway.
    """
    lib = Path(argv_key_lib) if argv_key_lib else argv_key_library()
    repo = Path(repository).resolve()
    cmd = ["docker", "run", "--rm", "--init"]
    if name:
        cmd += ["--name", name]
    if gpus:
        cmd += ["--gpus", "all"]
    cmd += ["--shm-size", shm_size]
    for what, inside in CONTAINER_PORTS.items():
        cmd += ["-p", f"{host}:{int(ports[what])}:{inside}"]
    cmd += ["-v", f"{repo}:{CONTAINER_REPOSITORY}:ro"]
    cmd += ["-v", f"{lib.resolve()}:{CONTAINER_ARGV_KEY}:ro", "-e", f"LD_PRELOAD={CONTAINER_ARGV_KEY}",
            "-e", KEY_VARIABLE]
    cmd += [image, "tritonserver"]
    cmd += safe_flags(
        repository=CONTAINER_REPOSITORY, host="0.0.0.0", http_port=CONTAINER_PORTS["http"],
        grpc_port=CONTAINER_PORTS["grpc"], metrics_port=CONTAINER_PORTS["metrics"],
        model_control=model_control, poll_secs=poll_secs, strict_config=strict_config,
    )
    return cmd


def docker_available(timeout: float = 10) -> bool:
    """True when a Docker engine answers (``docker info`` succeeds)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_docker() -> None:
    """Refuse (exit 3, a missing component) when no Docker engine answers, before anything starts."""
    if not docker_available():
        where = "is not installed (no `docker` on PATH)" if shutil.which("docker") is None else \
            "does not answer `docker info` (not running, or no permission)"
        raise MissingDependencyError(f"the docker runtime needs a Docker engine, and Docker {where}; install or "
                                     "start Docker, or use --runtime embedded")


class DockerServer(EmbeddedServer):
    """Like :class:`EmbeddedServer`, but runs Triton in NVIDIA's container."""

    kind = "docker"

    def __init__(self, repository: str | os.PathLike[str], *, image: str | None = None,
                 gpus: bool | None = None, shm_size: str = "1g", **kwargs: Any) -> None:
        super().__init__(repository, **kwargs)
        self.image = image or choose_image()
        self.gpus = gpu_visible() if gpus is None else gpus
        self.shm_size = shm_size
        self.container = f"tritonkit-{os.getpid()}-{self.http_port}"

    def command(self) -> list[str]:
        require_docker()
        ports = {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port}
        return docker_command(
            self.repository, self.image, ports, self.host, self.gpus, self.model_control,
            self.shm_size, name=self.container, poll_secs=self.poll_secs, strict_config=self.strict_config,
        ) + list(self.extra_args)

    def child_cwd(self) -> str | None:
        return None  # the container has its own working folder

    def child_env(self) -> dict[str, str]:
        """The ``docker`` client's environment: where ``-e TRITONKIT_ADMIN_KEY`` takes the key from."""
        return {**os.environ, KEY_VARIABLE: self.admin_value}

    def stop(self, timeout: float = 30) -> None:
        if self.is_running():
            subprocess.run(["docker", "stop", "-t", str(int(timeout)), self.container],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        super().stop(timeout)
