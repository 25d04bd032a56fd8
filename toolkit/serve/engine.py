"""Which container engine runs tritonkit's containers, and the commands it is driven with.

Two ways are supported, with one set of ``run``/``inspect``/``stop``/``rm``/``ps`` arguments:

- the ``docker`` CLI, against whatever Docker-compatible engine it reaches (``DOCKER_HOST``, or the
  default socket): Docker itself, or podman's ``podman system service``;
- ``podman`` directly, when no Docker engine answers but podman is installed (rootful podman needs
  no service).

``TRITONKIT_CONTAINER_ENGINE=docker|podman`` picks one; otherwise the docker CLI wins when its engine
answers, then podman. Whoever may use the engine is root-equivalent on this machine, so tritonkit
treats the engine's answers (``inspect``, labels) as trusted and a file's word (the run folder's
record) as not: a container is stopped or removed only when the engine confirms tritonkit's label
and the recorded ID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from contract.errors import MissingDependencyError, UsageError

ENGINES = ("docker", "podman")
ENGINE_VARIABLE = "TRITONKIT_CONTAINER_ENGINE"
# Every container tritonkit starts carries these labels; clean-up touches no other container.
LABEL = "io.tritonkit.serve"
LABEL_UID = "io.tritonkit.uid"
# The machine whose tritonkit started it: an engine shared by several machines (a remote DOCKER_HOST) must not
# have one machine take another's running containers for orphans.
LABEL_HOST = "io.tritonkit.host"


@dataclass(frozen=True)
class Engine:
    """One container engine: the program (``docker`` or ``podman``) and, for docker, the engine it talks to."""

    program: str
    path: str
    docker_host: str | None = None

    @property
    def name(self) -> str:
        """What to call it in messages and figures."""
        if self.program == "docker" and self.docker_host:
            return f"docker CLI ({self.docker_host})"
        return self.program

    def argv(self, *args: str) -> list[str]:
        return [self.path, *args]

    def env(self) -> dict[str, str]:
        """The client's environment (DOCKER_HOST pinned to the engine that was checked)."""
        env = dict(os.environ)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return env

    def run(self, *args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run one engine command; its output captured as text."""
        try:
            return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                                  env=self.env(), check=check, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(self.argv(*args), 124, "", f"{self.program} {args[0]} timed out")

    def answers(self, timeout: float = 15) -> bool:
        """True when the engine answers (``docker version`` reaches its server / ``podman info`` works)."""
        probe = ("version", "--format", "{{.Server.Version}}") if self.program == "docker" else \
            ("info", "--format", "{{.Host.OCIRuntime.Name}}")
        done = self.run(*probe, timeout=timeout)
        return done.returncode == 0 and bool(done.stdout.strip())

    # -- containers ---------------------------------------------------------------------------
    def inspect(self, ref: str) -> dict[str, Any] | None:
        """The engine's record of container ``ref`` (name or ID); None when it has none."""
        done = self.run("container", "inspect", ref, timeout=30)
        if done.returncode != 0:
            return None
        try:
            data = json.loads(done.stdout)
        except ValueError:
            return None
        return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None

    def labelled(self, all_states: bool = True) -> list[str]:
        """IDs of the containers that carry tritonkit's serve label (running, or every state)."""
        args = ["ps", "-q", "--no-trunc", "--filter", f"label={LABEL}"]
        if all_states:
            args.insert(1, "-a")
        done = self.run(*args, timeout=30)
        return done.stdout.split() if done.returncode == 0 else []

    def stop(self, ref: str, timeout: float) -> None:
        """``stop``: SIGTERM to the container's init (Triton drains in-flight requests), SIGKILL after ``timeout``."""
        self.run("stop", "-t", str(max(1, int(timeout))), ref, timeout=timeout + 30)

    def remove(self, ref: str) -> None:
        self.run("rm", "-f", ref, timeout=60)


def is_ours(info: dict[str, Any] | None, container_id: str | None = None) -> bool:
    """Whether an inspected container is one tritonkit started for this user (and, given, has that ID)."""
    if not info:
        return False
    labels = (info.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL) != "1" or labels.get(LABEL_UID) != str(os.geteuid()):
        return False
    return container_id is None or str(info.get("Id", "")).startswith(container_id) and len(container_id) >= 12


def is_running(info: dict[str, Any] | None) -> bool:
    return bool(info and (info.get("State") or {}).get("Running"))


def _candidates(choice: str | None) -> list[Engine]:
    wanted = (choice or os.environ.get(ENGINE_VARIABLE, "")).strip()
    if wanted and wanted not in ENGINES:
        raise UsageError(f"{ENGINE_VARIABLE}={wanted!r} names no engine tritonkit drives; use docker or podman "
                         "(or leave it unset to take whichever answers)")
    found = []
    for program in (wanted,) if wanted else ENGINES:
        path = shutil.which(program)
        if path:
            host = os.environ.get("DOCKER_HOST") or None if program == "docker" else None
            found.append(Engine(program, path, host))
    return found


def find_engine(choice: str | None = None) -> Engine | None:
    """The first engine that answers (see the module docstring for the order); None when none does."""
    for engine in _candidates(choice):
        if engine.answers():
            return engine
    return None


def require_engine(choice: str | None = None) -> Engine:
    """The engine to use, or a one-line refusal (exit 3, a missing component) saying what to install or start."""
    engine = find_engine(choice)
    if engine is not None:
        return engine
    wanted = choice or os.environ.get(ENGINE_VARIABLE) or ""
    programs = [p for p in ((wanted,) if wanted else ENGINES) if shutil.which(p)]
    if not programs:
        raise MissingDependencyError(
            "the docker runtime needs a container engine, and Docker is not installed (no `docker` or `podman` on "
            "PATH); install Docker or podman, or use --runtime embedded")
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    why = {"docker": f"docker: no engine answers at {where}", "podman": "podman: not root, or not set up"}
    which = f"neither {' nor '.join(programs)} answers" if len(programs) > 1 else f"{programs[0]} does not answer"
    raise MissingDependencyError(
        f"the docker runtime needs a container engine, and {which} ({'; '.join(why[p] for p in programs)}): start "
        "Docker, or `podman system service` with DOCKER_HOST set, or run podman as root after `sudo bash "
        "scripts/setup-containers.sh`; or use --runtime embedded")
