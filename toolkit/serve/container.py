"""Serve a repository with Triton in a container: the command, the image, the engine, the lifecycle.

The container runs the native C++ backends (TensorRT, ONNX Runtime) in NVIDIA's image, so it is the
runtime for TensorRT plans. A plan runs only on the TensorRT version that built it, so
:func:`choose_image` picks the container release whose TensorRT matches the plans' build records.
Without a GPU the default image is tritonkit's CPU stand-in (:mod:`toolkit.serve.image`) when it is
built here.

What holds for every container tritonkit starts (through the ``docker`` CLI against any
Docker-compatible engine, or ``podman`` directly; see :mod:`toolkit.serve.engine`):

- the repository is mounted read-only (an object-storage repository is not mounted: Triton reads
  the URL, credentials pass by name only); ports are published on ``--host`` (127.0.0.1) only;
- the admin key is in no configuration the engine keeps (``docker inspect``), no argument and no
  environment inside the container: the engine client's standard input carries it, and the preloaded
  ``argv_key`` library reads it before ``main`` (``TRITONKIT_ADMIN_KEY_FD=0``, see ``argv_key.c``);
- readiness fails with Triton's own reasons, read from the client's output (the container's log);
- stop is graceful (the engine's ``stop``: SIGTERM, Triton finishes in-flight requests), the container
  is removed (``--rm``, then checked), and a container whose client crashed is found by tritonkit's
  labels, checked with the engine, and removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from contract.errors import ServerError
from toolkit.gpus import gpu_visible
from toolkit.serve.embedded import EmbeddedServer, safe_flags, server_error_lines
from toolkit.serve.engine import (
    LABEL,
    LABEL_HOST,
    LABEL_UID,
    Engine,
    find_engine,
    is_ours,
    is_running,
    require_engine,
)
from toolkit.serve.install import argv_key_library
from toolkit.serve.interrupts import interrupts_raise, signals_held
from toolkit.serve.procs import identity_of

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
KEY_FD_VARIABLE = "TRITONKIT_ADMIN_KEY_FD"  # must match argv_key.c
# Object-storage credentials a container gets from the client's environment: after the key on the client's
# standard input (argv_key.c sets them with setenv), so no value is in the container's configuration or in
# tritonserver's /proc environment. A profile (AWS_PROFILE, ~/.aws) or a key file is not carried in.
CREDENTIAL_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                    "AWS_REGION", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY")
LOOPBACK_HOSTS = ("localhost", "::1")


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


def default_image() -> str:
    """NVIDIA's image on a GPU machine; without a GPU, tritonkit's CPU stand-in when it is built here."""
    if not gpu_visible():
        try:
            from toolkit.serve.image import image_exists, plan_image

            tag = plan_image().tag
            if image_exists(tag):
                return tag
        except Exception:  # noqa: BLE001 - no stand-in plan here (no wheel, no podman): NVIDIA's image
            pass
    return choose_image()


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
    program: str = "docker",
    labels: Mapping[str, str] | None = None,
    env_names: Iterable[str] = (),
    network_host: bool = False,
) -> list[str]:
    """``docker run`` (or ``podman run``) for Triton: repository read-only, ports published only on ``host``.

    ``ports`` maps ``http``/``grpc``/``metrics`` to host ports. Inside the container Triton binds
    all interfaces (needed for publishing); only ``host`` on the machine reaches it. A ``repository``
    that is an object-storage URL is given to Triton as it is (nothing mounted); ``env_names`` pass
    variables by name only (``-e NAME``: the value comes from the client's environment).

    The admin key is on no command line and in no environment: ``-i`` attaches the client's standard
    input, whose first line is the key, and the ``argv_key`` library (``argv_key_lib``, mounted
    read-only and preloaded) reads it into Triton's flags before ``main`` (``TRITONKIT_ADMIN_KEY_FD=0``).

    ``network_host`` runs the container in the machine's network (``--network host``): nothing is
    published and Triton binds ``host`` and the given ports itself. Only for an object store on this
    machine's loopback, which a container on the engine's bridge cannot reach.
    """
    from toolkit.repository.remote import is_remote, parse_remote

    lib = Path(argv_key_lib) if argv_key_lib else argv_key_library()
    cmd = [program, "run", "-i", "--rm", "--init"]
    if name:
        cmd += ["--name", name]
    for key, value in (labels or {}).items():
        cmd += ["--label", f"{key}={value}"]
    if gpus:
        cmd += ["--gpus", "all"] if Path(program).name == "docker" else ["--device", "nvidia.com/gpu=all"]
    cmd += ["--shm-size", shm_size]
    if network_host:
        cmd += ["--network", "host"]
        inside_ports, bind = {what: int(ports[what]) for what in CONTAINER_PORTS}, host
    else:
        for what, inside in CONTAINER_PORTS.items():
            cmd += ["-p", f"{host}:{int(ports[what])}:{inside}"]
        inside_ports, bind = dict(CONTAINER_PORTS), "0.0.0.0"
    if is_remote(str(repository)):
        model_repository = parse_remote(str(repository)).triton_url()
    else:
        cmd += ["-v", f"{Path(repository).resolve()}:{CONTAINER_REPOSITORY}:ro"]
        model_repository = CONTAINER_REPOSITORY
    cmd += ["-v", f"{lib.resolve()}:{CONTAINER_ARGV_KEY}:ro", "-e", f"LD_PRELOAD={CONTAINER_ARGV_KEY}",
            "-e", f"{KEY_FD_VARIABLE}=0"]
    for variable in env_names:
        cmd += ["-e", variable]
    cmd += [image, "tritonserver"]
    cmd += safe_flags(
        repository=model_repository, host=bind, http_port=inside_ports["http"],
        grpc_port=inside_ports["grpc"], metrics_port=inside_ports["metrics"],
        model_control=model_control, poll_secs=poll_secs, strict_config=strict_config,
    )
    return cmd


def docker_available(timeout: float = 10) -> bool:
    """True when a container engine answers (the docker CLI's engine, or podman)."""
    return find_engine() is not None


def require_docker() -> Engine:
    """The engine to use; refused (exit 3, a missing component) when none answers, before anything starts."""
    return require_engine()


def client_alive(name: str) -> bool:
    """Whether a ``docker run``/``podman run`` client of container ``name`` still runs on this machine
    (a process whose arguments hold ``--name NAME``; conmon's ``-n NAME`` does not count)."""
    needle = f"\0--name\0{name}\0".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                args = b"\0" + fh.read()
        except OSError:
            continue
        if needle in args and b"\0run\0" in args:
            return True
    return False


def unreadable_for_others(root: Path, limit: int = 20000) -> Path | None:
    """The first path under ``root`` that a user other than its owner cannot read (a folder also needs x);
    None when all can be (or after ``limit`` files, for a huge repository)."""
    seen = 0
    for dirpath, _dirs, files in os.walk(root):
        folder = Path(dirpath)
        try:
            if folder.stat().st_mode & 0o005 != 0o005:
                return folder
        except OSError:
            return folder
        for name in files:
            try:
                if not (folder / name).stat().st_mode & 0o004:
                    return folder / name
            except OSError:
                continue  # a dangling link: Triton reports what it needs
            seen += 1
            if seen >= limit:
                return None
    return None


def remove_container(engine: Engine, ref: str, timeout: float = 30, container_id: str | None = None) -> bool:
    """Stop (gracefully, up to ``timeout`` s) and remove container ``ref`` when the engine says it is
    tritonkit's (its labels, this user, and ``container_id`` when given); False when it is not, or is gone."""
    info = engine.inspect(ref)
    if not is_ours(info, container_id):
        return False
    assert info is not None
    cid = str(info["Id"])
    if is_running(info):
        engine.stop(cid, timeout)
    if engine.inspect(cid) is not None:  # --rm removes it on exit; make sure
        engine.remove(cid)
    return engine.inspect(cid) is None


def remove_orphans(engine: Engine, timeout: float = 30) -> list[str]:
    """Remove tritonkit's containers (this user's and this machine's, by label) whose client is gone (it
    crashed or was killed: nothing else would ever stop them). Returns their names."""
    removed = []
    for cid in engine.labelled():
        info = engine.inspect(cid)
        if not is_ours(info):
            continue
        assert info is not None
        if ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_HOST) != socket.gethostname():
            continue  # another machine's client may be running it: not ours to judge
        name = str(info.get("Name", "")).lstrip("/")
        if name and not client_alive(name) and remove_container(engine, cid, timeout, cid):
            removed.append(name)
    return removed


def engine_from_state(state: Mapping[str, Any]) -> Engine | None:
    """The engine a record names, found on PATH again (a record never supplies a program path)."""
    import shutil

    recorded = state.get("engine")
    if not isinstance(recorded, Mapping) or recorded.get("program") not in ("docker", "podman"):
        return None
    program = str(recorded["program"])
    path = shutil.which(program)
    host = recorded.get("docker_host")
    if path is None:
        return None
    return Engine(program, path, str(host) if isinstance(host, str) and host else None)


def stop_recorded_container(state: Mapping[str, Any], timeout: float = 30) -> bool:
    """Stop and remove the container a run folder's record names, once the engine confirms it is the one
    tritonkit started (label, this user, the recorded ID). False when there is nothing of ours to stop."""
    engine = engine_from_state(state)
    cid = state.get("container_id")
    if engine is None or not isinstance(cid, str) or len(cid) < 12:
        return False
    return remove_container(engine, cid, timeout, cid)


class DockerServer(EmbeddedServer):
    """Like :class:`EmbeddedServer`, but runs Triton in a container (see the module docstring).

    ``pid`` is the engine client's (``docker run``/``podman run``, attached): its output is Triton's log,
    and it lives exactly as long as the container.
    """

    kind = "docker"

    def __init__(self, repository: str | os.PathLike[str], *, image: str | None = None,
                 gpus: bool | None = None, shm_size: str = "1g", engine: Engine | None = None,
                 **kwargs: Any) -> None:
        kwargs.pop("download_root", None)  # Triton downloads a remote repository inside the container
        super().__init__(repository, **kwargs)
        self.image = image
        self.gpus = gpu_visible() if gpus is None else gpus
        self.shm_size = shm_size
        self.engine = engine
        self.container = f"tritonkit-{os.getpid()}-{self.http_port}-{secrets.token_hex(3)}"
        self.container_id: str | None = None
        remote = getattr(self, "remote", None)
        # An object store on this machine's loopback is out of the bridge's reach: the machine's network then.
        self.network_host = bool(remote is not None and remote.host is not None and (
            remote.host.startswith("127.") or remote.host in LOOPBACK_HOSTS))

    def handoff(self) -> bytes:
        """What the client's standard input carries: the key, then (object storage) the credentials set here,
        then an empty line (see argv_key.c)."""
        lines = [self.admin_value]
        if getattr(self, "remote", None) is not None:
            lines += [f"{n}={os.environ[n]}" for n in CREDENTIAL_NAMES if os.environ.get(n)]
        if any("\n" in line for line in lines):
            raise ServerError("a credential in the environment holds a newline; it cannot be handed to the "
                              "container: fix its value")
        return ("\n".join(lines) + "\n\n").encode()

    @property
    def engine_record(self) -> dict[str, Any] | None:
        """What the run folder records of the engine (program name, DOCKER_HOST; never a path)."""
        if self.engine is None:
            return None
        return {"program": self.engine.program, "docker_host": self.engine.docker_host}

    def command(self) -> list[str]:
        self.engine = self.engine or require_engine()
        self.image = self.image or default_image()
        ports = {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port}
        labels = {LABEL: "1", LABEL_UID: str(os.geteuid()), LABEL_HOST: socket.gethostname()}
        remote = getattr(self, "remote", None)  # an object-storage URL (parsed by EmbeddedServer)
        cmd = docker_command(
            remote.triton_url() if remote is not None else self.repository, self.image, ports, self.host, self.gpus,
            self.model_control, self.shm_size, name=self.container, poll_secs=self.poll_secs,
            strict_config=self.strict_config, program=self.engine.path, labels=labels,
            network_host=self.network_host,
        ) + list(self.extra_args)
        return cmd if self.load_at_start else [a for a in cmd if not a.startswith("--load-model=")]

    def child_cwd(self) -> str | None:
        return None  # the container has its own working folder

    def child_env(self) -> dict[str, str]:
        """The engine client's environment: no key in it (the key goes on its standard input)."""
        assert self.engine is not None
        env = self.engine.env()
        env.pop("TRITONKIT_ADMIN_KEY", None)
        return env

    def _check_before_start(self) -> None:
        self.engine = self.engine or require_engine()
        remove_orphans(self.engine)  # a crashed client's container may hold our ports
        super()._check_before_start()
        self.image = self.image or default_image()
        if getattr(self, "remote", None) is None:
            self._check_readable_by_image_user()

    def _check_readable_by_image_user(self) -> None:
        """Refuse, in one line, a repository the image's non-root user cannot read (a private temp folder):
        Triton would otherwise fail inside the container with a bare permission error."""
        assert self.engine is not None and self.image is not None
        done = self.engine.run("image", "inspect", "--format", "{{.Config.User}}", self.image, timeout=30)
        user = done.stdout.strip() if done.returncode == 0 else ""
        if user in ("", "0", "root") or user.startswith(("0:", "root:")):
            return  # root in the container (or an image not here yet): it reads what the mount shows
        blocked = unreadable_for_others(Path(self.repository))
        if blocked is not None:
            raise ServerError(f"{blocked} cannot be read by other users, and image {self.image} runs as {user} (not "
                              f"root), so Triton in the container could not read the repository; run `chmod -R "
                              f"a+rX {self.repository}` or serve with --runtime embedded")

    def start(self, timeout: float | None = None) -> DockerServer:
        """Start the container and wait until Triton is ready (see :meth:`EmbeddedServer.start`).

        The key is the first line on the client's standard input, which is then closed.
        """
        if self._proc is not None and self._proc.poll() is None:
            return self
        timeout = 120.0 if timeout is None else timeout
        cmd = self._prepare_start()
        t0 = time.monotonic()
        with interrupts_raise():
            try:
                with signals_held(), open(self._log_path, "wb") as log:
                    self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                                  env=self.child_env(), start_new_session=True)
                    self._identity = identity_of(self._proc.pid)
                assert self._proc.stdin is not None
                try:
                    self._proc.stdin.write(self.handoff())
                    self._proc.stdin.close()
                except BrokenPipeError:
                    pass  # the client exited at once: _wait_ready reports its reason
                self._wait_ready(timeout)
                self._check_restricted()
            except BaseException:
                with signals_held():
                    self.stop(timeout=10)
                raise
        self.ready_seconds = time.monotonic() - t0
        return self

    def _check_own_ports(self) -> None:
        """The answer came from our container: the engine says it is ours, running, and publishes our ports
        (a port taken by anything else would have failed the container's start)."""
        assert self.engine is not None
        info = self.engine.inspect(self.container)
        if not is_ours(info) or not is_running(info):
            raise ServerError(f"Triton answered on {self.http_url}, but container {self.container} is not running "
                              "there; another process holds the port: stop it or choose another --http-port")
        assert info is not None
        self.container_id = str(info["Id"])
        if self.network_host:
            self._check_host_network_ports(info)
            return
        published = ((info.get("NetworkSettings") or {}).get("Ports")) or {}
        for what, inside in CONTAINER_PORTS.items():
            want = getattr(self, f"{what}_port")
            got = {str(b.get("HostPort")) for b in published.get(f"{inside}/tcp") or [] if isinstance(b, dict)}
            if str(want) not in got:
                raise ServerError(f"container {self.container} does not publish {what} port {want} (the engine "
                                  f"shows {sorted(got) or 'none'}); choose another --{what}-port")

    def _check_host_network_ports(self, info: dict[str, Any]) -> None:
        """In the machine's network Triton binds the ports itself: they must be held by the container's processes."""
        from toolkit.serve.embedded import check_own_ports

        init = int((info.get("State") or {}).get("Pid") or 0)
        children = []
        for task in Path(f"/proc/{init}/task").glob("*/children") if init > 1 else []:
            with contextlib.suppress(OSError, ValueError):  # the process may end while it is read
                children += [int(c) for c in task.read_text().split()]
        ports = {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port}
        for pid in children or [init]:
            try:
                check_own_ports(pid, self.host, ports, settle_s=2.0)
                return
            except ServerError:
                continue
        raise ServerError(f"Triton's ports on {self.host} answer, but not from container {self.container}: another "
                          "process took one after the port check; stop it or choose other ports")

    def _failure_message(self, what: str) -> str:
        """Triton's own reasons from the container's log; else the engine client's error (an image it
        cannot find, a port it cannot publish)."""
        message = super()._failure_message(what)
        if "no error in its log" not in message:
            return message
        text = self.read_log()
        engine_lines = [ln.strip() for ln in text.splitlines()
                        if ln.strip().lower().startswith(("error:", "docker: error", "error response"))
                        or "Error: " in ln]
        if engine_lines and not server_error_lines(text):
            line = engine_lines[-1][:400]
            if any(w in line.lower() for w in ("registry", "pull", "image not known", "no such image")):
                line += (f"; the engine has no image {self.image} and cannot fetch it: pass --image with one it has, "
                         "or build tritonkit's CPU stand-in with `tritonkit image build`")
            message = message.replace("no error in its log", line)
            if self.engine is not None:  # the engine refused to run it: Triton never started
                message = message.replace("Triton exited", f"`{self.engine.program} run` exited", 1)
        return message

    def stop(self, timeout: float = 30) -> None:
        """Graceful: the engine stops the container (Triton drains in-flight requests), then the client
        exits; the container is removed (``--rm``, checked)."""
        if self._proc is not None and self.engine is not None:
            remove_container(self.engine, self.container_id or self.container, timeout, self.container_id)
        super().stop(timeout)
