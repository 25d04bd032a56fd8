"""What a user asks of ``tritonkit serve``, checked before anything starts.

Each mistake is refused in one line that says how to fix it (a port Triton cannot take, two endpoints
on one port, an option that means nothing for the chosen runtime); a choice that is allowed but risky
(every interface, an empty repository) gives a one-line warning instead.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from contract.errors import UsageError
from toolkit.repository.options import DEFAULT_REPOSITORY
from toolkit.repository.remote import is_remote

PORT_FLAGS = ("http", "grpc", "metrics")


@dataclass
class ServeOptions:
    repository: str = DEFAULT_REPOSITORY
    runtime: str = "auto"
    image: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_control: str = "none"
    poll_secs: int = 2
    # Readiness deadline in seconds; None: 120 for a folder, 300 for object storage (see effective_timeout).
    timeout: float | None = None
    # Triton's config auto-complete off: models relying on it (inputs, outputs, max_batch_size) are refused.
    strict_config: bool = False

    def effective_timeout(self) -> float:
        """The readiness deadline: the one asked for, else one sized for where the repository is."""
        from toolkit.serve.embedded import default_timeout

        return self.timeout if self.timeout is not None else default_timeout(self.repository)


def check_ports_valid(opts: ServeOptions) -> None:
    """Each endpoint a port of its own in 1..65535 (0 would be a random port no client could find)."""
    ports = {what: getattr(opts, f"{what}_port") for what in PORT_FLAGS}
    for what, port in ports.items():
        if not 1 <= port <= 65535:
            raise UsageError(f"--{what}-port {port} is not a port Triton can listen on; give a port from 1 to 65535 "
                             "(0, a random port, is not supported: clients could not find it)")
    seen: dict[int, str] = {}
    for what, port in ports.items():
        if port in seen:
            raise UsageError(f"--{seen[port]}-port and --{what}-port are both {port}; give each endpoint its own port")
        seen[port] = what


def check_host(host: str) -> None:
    """An IPv4 address or a name that resolves to one (Triton 2.51's gRPC endpoint cannot bind IPv6)."""
    try:
        if ipaddress.ip_address(host.strip("[]")).version == 6:
            raise UsageError(f"--host {host}: Triton 2.51 cannot bind an IPv6 address (its gRPC endpoint misreads "
                             f"'{host}:PORT'); use 127.0.0.1, or 0.0.0.0 for every IPv4 interface")
        return
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None, socket.AF_INET)
    except OSError:
        raise UsageError(f"--host {host!r} is not an IPv4 address or a name that resolves to one; give e.g. "
                         "127.0.0.1") from None


def _is_model(folder: Path, strict_config: bool) -> bool:
    """A folder Triton loads: one with a config.pbtxt, or (auto-complete on) a numbered version folder."""
    if not folder.is_dir():
        return False
    if (folder / "config.pbtxt").is_file():
        return True
    return not strict_config and any(v.is_dir() and v.name.isdigit() for v in folder.iterdir())


def repository_is_empty(repository: str, strict_config: bool = False) -> bool:
    """No model folder: Triton would report ready while serving nothing (a folder only: an object-storage
    repository is listed by Triton itself, which refuses a prefix holding nothing)."""
    if is_remote(repository):
        return False
    root = Path(repository)
    return root.is_dir() and not any(_is_model(child, strict_config) for child in root.iterdir())


def check_strict_configs(repository: str) -> None:
    """With auto-complete off Triton refuses a model folder without config.pbtxt (it cannot read one):
    say so before starting, naming the folder, instead of a failed start. (A folder only: Triton reports
    an object-storage model without one, reduced to one line by the start-up error.)"""
    if is_remote(repository):
        return
    root = Path(repository)
    if not root.is_dir():
        return
    bare = sorted(c.name for c in root.iterdir() if _is_model(c, False) and not (c / "config.pbtxt").is_file())
    if bare:
        raise UsageError(f"--strict-config: model folder {bare[0]} in {repository} has no config.pbtxt, which Triton "
                         "refuses without auto-complete; write one (tritonkit repo add does) or serve without "
                         "--strict-config")


def check_serve_options(opts: ServeOptions, runtime: str) -> list[str]:
    """Refuse (UsageError, one line) what cannot work; return one-line warnings for what is risky.

    ``runtime`` is the chosen one (``auto`` resolved), since ``--image`` means something only for docker.
    """
    check_ports_valid(opts)
    check_host(opts.host)
    if opts.poll_secs < 1:
        raise UsageError(f"--poll-secs {opts.poll_secs} must be at least 1 (seconds between repository polls)")
    if opts.image and runtime != "docker":
        chose = "auto chose the embedded server here (no Docker engine and GPU)" if opts.runtime == "auto" else \
            "the runtime is embedded"
        raise UsageError(f"--image {opts.image} is for the docker runtime, and {chose}; drop --image or use "
                         "--runtime docker")
    if opts.timeout is not None and not opts.timeout > 0:
        raise UsageError(f"--timeout {opts.timeout} must be a positive number of seconds")
    if opts.strict_config:
        check_strict_configs(opts.repository)
    warnings = []
    if opts.host in ("0.0.0.0", "") or opts.host.startswith("0."):
        warnings.append(f"--host {opts.host} exposes every endpoint to every network this machine is on; anyone "
                        "who reaches it can run inference (and Triton's HTTP endpoint can be crashed by one "
                        "request); prefer 127.0.0.1 behind a proxy")
    if repository_is_empty(opts.repository, opts.strict_config):
        warnings.append(f"repository {opts.repository} holds no model (no folder with a config.pbtxt): the server "
                        "will report ready while serving nothing; add one with `tritonkit repo add`")
    return warnings
