"""Start and stop a real Triton Inference Server without Docker.

:class:`EmbeddedServer` runs the ``tritonserver`` from the ``nvidia-pytriton`` wheel (prepared by
:func:`toolkit.server.install.prepare_triton`) with safe defaults: every endpoint bound to
127.0.0.1, no model control unless asked, strict readiness, exit on any load error, no config
auto-completion, and the model-repository API restricted to a per-server header when model control
is on. ``start()`` returns once ``/v2/health/ready`` answers 200, or raises a one-line
:class:`~toolkit.errors.ServerError` carrying the server's own reason per failed model.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit.errors import ServerError, UsageError
from toolkit.server.ports import port_in_use

MODEL_CONTROL_MODES = ("none", "explicit", "poll")
ADMIN_HEADER = "tritonkit-admin-key"


def safe_flags(
    *,
    repository: str,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    model_control: str,
    poll_secs: int,
    admin_value: str | None,
) -> list[str]:
    """tritonserver flags shared by the embedded server and the container command."""
    if model_control not in MODEL_CONTROL_MODES:
        raise UsageError(
            f"model control mode {model_control!r} is unknown; use one of {', '.join(MODEL_CONTROL_MODES)}"
        )
    flags = [
        f"--model-repository={repository}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
        f"--model-control-mode={model_control}",
        "--strict-readiness=true",
        "--exit-on-error=true",
        "--disable-auto-complete-config",
    ]
    if model_control == "poll":
        flags.append(f"--repository-poll-secs={max(1, int(poll_secs))}")
    if model_control == "explicit":
        flags.append("--load-model=*")
    if model_control != "none" and admin_value:
        flags.append(f"--http-restricted-api=model-repository:{ADMIN_HEADER}={admin_value}")
        flags.append(f"--grpc-restricted-protocol=model-repository:{ADMIN_HEADER}={admin_value}")
    return flags


def check_ports(host: str, ports: dict[str, int]) -> None:
    """Refuse, in one line, a port that is already taken."""
    for what, port in ports.items():
        if port_in_use(host, port):
            raise ServerError(
                f"{what} port {port} on {host} is already in use; stop what holds it or choose "
                f"another with --{what}-port"
            )


# A failed model in Triton's log: `failed to load 'm' version 1: Internal: reason` or the
# status table row `| m | 1 | UNAVAILABLE: Internal: reason |`.
_FAILED_LOAD = re.compile(r"failed to load '([^']+)'(?: version \d+)?: (.*?)\"?$")
_TABLE_ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*\d+\s*\|\s*UNAVAILABLE: (.*?)\s*\|$")


def failed_models(log_text: str) -> dict[str, str]:
    """Model name -> the server's own reason, for every model that failed to load."""
    reasons: dict[str, str] = {}
    for line in log_text.splitlines():
        m = _FAILED_LOAD.search(line) or _TABLE_ROW.match(line.strip())
        if m and m.group(1) not in reasons:
            # Triton escapes newlines; the first line is the reason, the rest a Python trace.
            reasons[m.group(1)] = m.group(2).split("\\n", 1)[0].strip().rstrip('"')
    return reasons


def server_error_lines(log_text: str) -> list[str]:
    """Triton's own error lines (``E1126 ...`` or ``error: ...``), without the log prefix."""
    lines = []
    for line in log_text.splitlines():
        if re.match(r"^E\d{4} ", line):
            lines.append(line.split("] ", 1)[-1].split("\\n", 1)[0].strip().strip('"'))
        elif line.startswith("error:"):
            lines.append(line[len("error:"):].strip())
    return lines


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``url``; (status, body), with status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - local URL only
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


class EmbeddedServer:
    """A tritonserver process serving ``repository`` on ``host``.

    Use as a context manager, or ``start()`` / ``stop()``. ``admin_headers`` carries the header
    that model-repository API calls need when model control is ``explicit`` or ``poll``.
    """

    kind = "embedded"

    def __init__(
        self,
        repository: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        model_control: str = "none",
        poll_secs: int = 2,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.repository = Path(repository).resolve()
        self.host = host
        self.http_port = int(http_port)
        self.grpc_port = int(grpc_port)
        self.metrics_port = int(metrics_port)
        self.model_control = model_control
        self.poll_secs = int(poll_secs)
        self.extra_args = tuple(extra_args)
        self.admin_value = secrets.token_hex(16) if model_control != "none" else None
        self._log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._scrubbed = self.admin_value is None
        self.ready_seconds: float | None = None

    # -- addresses ------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.host}:{self.metrics_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {ADMIN_HEADER: self.admin_value} if self.admin_value else {}

    # -- lifecycle ------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The exact tritonserver command line (after preparing the install)."""
        from toolkit.server.install import prepare_triton

        install = prepare_triton()
        self._install = install
        return [
            str(install.binary),
            *safe_flags(
                repository=str(self.repository), host=self.host, http_port=self.http_port,
                grpc_port=self.grpc_port, metrics_port=self.metrics_port,
                model_control=self.model_control, poll_secs=self.poll_secs, admin_value=self.admin_value,
            ),
            f"--backend-directory={install.backend_dir}",
            f"--cache-directory={install.cache_dir}",
            "--allow-gpu-metrics=false",
            "--exit-timeout-secs=5",
            *self.extra_args,
        ]

    def _env(self) -> dict[str, str]:
        return self._install.env()

    def _check_before_start(self) -> None:
        if not self.repository.is_dir():
            raise ServerError(
                f"model repository {self.repository} does not exist; create one with `tritonkit repo` "
                "or pass --repository"
            )
        check_ports(self.host, {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port})

    def start(self, timeout: float = 120) -> EmbeddedServer:
        """Start the server and wait until it is ready.

        Raises:
            ServerError: a port is taken, the repository is missing, the server exited (with its
                reasons per failed model), or it was not ready within ``timeout`` seconds.
        """
        if self._proc is not None and self._proc.poll() is None:
            return self
        self._check_before_start()
        cmd = self.command()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        self._scrubbed = self.admin_value is None
        with open(self._log_path, "wb") as log:
            # Own session: stop() can signal the server and its python stubs together.
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env(), start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop(timeout=10)
            raise
        self.ready_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        ready_url = f"http://{self.http_url}/v2/health/ready"
        while True:
            if self._proc.poll() is not None:
                raise ServerError(self._failure_message(f"exited with code {self._proc.returncode}"))
            if not self._scrubbed and self._log_path and self._log_path.stat().st_size > 0:
                # Triton has parsed its flags before it logs anything: the key is now only in its heap.
                self._scrubbed = scrub_cmdline(self._proc.pid, self.admin_value)
            if http_get(ready_url, timeout=1.0)[0] == 200:
                if not self._scrubbed:
                    self._scrubbed = scrub_cmdline(self._proc.pid, self.admin_value)
                return
            if time.monotonic() >= deadline:
                raise ServerError(self._failure_message(f"not ready after {timeout:g} s"))
            time.sleep(0.1)

    def read_log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace") if self._log_path else ""
        except OSError:
            return ""

    def _failure_message(self, what: str) -> str:
        text = self.read_log()
        failed = failed_models(text)
        if failed:
            reasons = "; ".join(f"model '{m}': {r}" for m, r in failed.items())
        else:
            errors = server_error_lines(text)
            reasons = "; ".join(errors[:3]) if errors else "no error in its log"
        return f"Triton {what}: {reasons} (log: {self._log_path})"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def is_ready(self) -> bool:
        return http_get(f"http://{self.http_url}/v2/health/ready", timeout=1.0)[0] == 200

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully (SIGINT, then SIGTERM), then kill; safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            half = max(1.0, timeout / 2)
            for sig, wait in ((signal.SIGINT, half), (signal.SIGTERM, max(1.0, timeout - half))):
                try:
                    proc.send_signal(sig)
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
            if proc.poll() is None:
                _kill_group(proc.pid)
                proc.wait(10)
        # Stubs left behind by a killed server belong to its session; never leak them.
        _kill_group(proc.pid)
        self._proc = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def scrub_cmdline(pid: int, secret: str | None) -> bool:
    """Overwrite ``secret`` in the argument memory of child ``pid`` so ``ps`` and ``/proc/PID/cmdline``
    no longer show it; True when it is gone (or there was none).

    tritonserver takes the restricted-API header value only as a flag, and every local user can read
    a process's command line. Once Triton has parsed its flags the argv copy is dead memory, so the
    parent (allowed to write a child's memory under Yama ptrace_scope <= 1) blanks it. Best effort:
    where the kernel refuses, the key stays visible to local users for the server's life, and the
    caller knows from the False return.
    """
    if not secret:
        return True
    needle = secret.encode()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (stat fields 48, 49)
        with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            args = mem.read(end - start)
            at = args.find(needle)
            while at >= 0:
                mem.seek(start + at)
                mem.write(b"x" * len(needle))
                at = args.find(needle, at + len(needle))
        return needle not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
