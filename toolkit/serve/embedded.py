"""Start and stop a real Triton Inference Server without Docker.

:class:`EmbeddedServer` runs the ``tritonserver`` from the ``nvidia-pytriton`` wheel (prepared by
:func:`toolkit.serve.install.prepare_triton`) with safe defaults: every endpoint bound to
127.0.0.1, no model control unless asked, strict readiness, exit on any load error, config
auto-completion as in stock Triton (``strict_config`` turns it off), and the shared-memory, logging,
trace and model-repository APIs restricted to a per-server header whose value never appears on any
command line (see ``argv_key.c``). ``start()`` returns once ``/v2/health/ready`` answers 200, or
raises a one-line :class:`~contract.errors.ServerError` carrying the server's own reason per failed model.

The repository may be a folder or an object-storage URL (``s3://host:port/bucket/path``, ``gs://``,
``as://``; see :mod:`toolkit.repository.remote`), which Triton reads itself. Credentials then reach it
only through the environment (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``...), never its command line; the
objects it downloads go to a private folder of this server (``TRITON_AWS_MOUNT_DIRECTORY`` and its GCS and
Azure twins), removed when it stops, since a killed Triton leaves them in ``/tmp`` otherwise.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contract.errors import ServerError, UsageError
from toolkit.repository.remote import RemoteURL, is_remote, parse_remote
from toolkit.serve.install import argv_key_library, prepare_triton, tritonkit_home
from toolkit.serve.interrupts import interrupts_raise, signals_held
from toolkit.serve.ports import listening_ports, port_in_use
from toolkit.serve.procs import ProcessIdentity, identity_of, session_handles

MODEL_CONTROL_MODES = ("none", "explicit", "poll")
ADMIN_HEADER = "tritonkit-admin-key"
# Triton API categories that only requests carrying the per-server admin header may use: the
# shared-memory API lets a client map (and crash on) other processes' regions, logging and trace
# settings redirect files and flood disks, and the repository API loads code.
RESTRICTED_APIS = ("shared-memory", "logging", "trace", "model-repository")
# Stands in for the key on tritonserver's command line; must match argv_key.c.
KEY_PLACEHOLDER = "@TRITONKIT_ADMIN_KEY@"
KEY_VARIABLE = "TRITONKIT_ADMIN_KEY"
# Where Triton localizes (downloads) a remote repository's model folders, per scheme (Triton 2.51 core,
# filesystem/implementations/{s3,gcs,as}.h; default /tmp, left behind when the server is killed).
MOUNT_VARIABLES = {"s3": "TRITON_AWS_MOUNT_DIRECTORY", "gs": "TRITON_GCS_MOUNT_DIRECTORY",
                   "as": "TRITON_AZURE_MOUNT_DIRECTORY"}
# Readiness deadlines: a remote repository is hundreds of requests (the default repository took 3.5-16 s from
# a loopback S3 against 1.7-12 s from a folder, 1.5-2.3 times as long; benchmarks/bench_replicas.py), so it
# gets more time before start-up is called failed.
LOCAL_TIMEOUT_S = 120.0
REMOTE_TIMEOUT_S = 300.0
# The environment variables that can carry object-storage credentials to Triton (names only ever shown).
CREDENTIAL_VARIABLES = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"),
    "gs": ("GOOGLE_APPLICATION_CREDENTIALS",),
    "as": ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"),
}


def safe_flags(
    *,
    repository: str,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    model_control: str,
    poll_secs: int,
    restrict: bool = True,
    strict_config: bool = False,
) -> list[str]:
    """tritonserver flags shared by the embedded server and the container command.

    With ``restrict`` the admin APIs answer only requests carrying :data:`ADMIN_HEADER`; its value is
    :data:`KEY_PLACEHOLDER` here, replaced inside tritonserver before ``main`` by the preloaded
    ``argv_key`` library from ``TRITONKIT_ADMIN_KEY``, so the key never enters argument memory that
    other local users can read.

    Auto-complete is on, as in stock Triton: a model may leave inputs, outputs and ``max_batch_size`` to
    its backend. ``strict_config`` turns it off (``--disable-auto-complete-config``), so every config must
    be complete and models relying on auto-complete are refused.
    """
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
    ]
    if strict_config:
        flags.append("--disable-auto-complete-config")
    if model_control == "poll":
        flags.append(f"--repository-poll-secs={max(1, int(poll_secs))}")
    if model_control == "explicit":
        flags.append("--load-model=*")
    if restrict:
        apis = ",".join(RESTRICTED_APIS)
        flags.append(f"--http-restricted-api={apis}:{ADMIN_HEADER}={KEY_PLACEHOLDER}")
        flags.append(f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={KEY_PLACEHOLDER}")
    return flags


def check_repository(path: Path) -> None:
    """Refuse, in one line, a repository path that is not a folder (saying what it is instead)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ServerError(
            f"model repository {path} does not exist; create one with `tritonkit repo add` or pass --repository"
        ) from None
    except OSError as exc:
        raise ServerError(f"model repository {path} cannot be read ({exc.strerror}); check its permissions") from None
    if not stat.S_ISDIR(mode):
        kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISREG, "a file"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
        kind = next((name for test, name in kinds if test(mode)), "not a folder")
        raise ServerError(
            f"model repository {path} is {kind}, not a folder; pass --repository with the repository folder"
        )


def check_repository_arg(repository: str | os.PathLike[str]) -> RemoteURL | None:
    """Refuse, in one line, a repository that cannot be served: a malformed object-storage URL
    (:func:`~toolkit.repository.remote.parse_remote`) or a path that is not a folder. The parsed URL, or None."""
    if is_remote(repository):
        return parse_remote(str(repository))
    check_repository(Path(repository))
    return None


def check_endpoint(remote: RemoteURL, timeout: float = 3.0) -> None:
    """Refuse, in one line, an S3 endpoint named in the URL that nothing answers on: Triton's S3 client
    retries such an endpoint for about a minute before it gives up."""
    if remote.host is None or remote.port is None:
        return
    try:
        with socket.create_connection((remote.host, remote.port), timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise ServerError(f"object store {remote.endpoint_url} of {remote} does not answer ({reason}); start it, or "
                      "fix the host and port in the URL")


def default_timeout(repository: str | os.PathLike[str]) -> float:
    """The readiness deadline for ``repository``: longer for object storage (see :data:`REMOTE_TIMEOUT_S`)."""
    return REMOTE_TIMEOUT_S if is_remote(repository) else LOCAL_TIMEOUT_S


def _credential_hint(remote: RemoteURL) -> str:
    names = CREDENTIAL_VARIABLES[remote.scheme]
    if remote.scheme == "s3":
        if not any(os.environ.get(n) for n in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE")):
            return ("no credentials are set: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
                    "and AWS_DEFAULT_REGION")
        return ("check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and "
                "AWS_DEFAULT_REGION")
    return f"check the credentials in {'/'.join(names)}"


def remote_failure(log_text: str, remote: RemoteURL) -> str | None:
    """Triton's reason for not opening the remote repository ``remote``, reduced to one line that says
    what to fix; None when its log names no storage failure (then the per-model reasons apply)."""
    where = f"bucket '{remote.bucket}'" + (f" at {remote.endpoint_url}" if remote.endpoint_url else "")
    for line in log_text.splitlines():
        text = line.split("] ", 1)[-1].strip().strip('"')
        if text.startswith("error: creating server:"):
            text = text[len("error: creating server:"):].strip()
        if "Couldn't connect" in text or "Failed to connect" in text or "curlCode: 7," in text:
            return (f"Triton could not reach {where} ({_triton_reason(text)}); start the object store or fix "
                    "the host and port in the URL")
        if "Unable to create" in text and "filesystem client" in text:
            found = bucket_verdict(remote)
            if found == "missing":
                return (f"Triton could not open {remote}: {where} does not exist ({_triton_reason(text)}); create "
                        f"it, or fix the bucket name in the URL")
            if found == "refused":
                return (f"Triton could not open {remote}: {where} refused the credentials "
                        f"({_triton_reason(text)}); {_credential_hint(remote)}")
            return (f"Triton could not open {remote}: {where} does not exist or refused the credentials "
                    f"({_triton_reason(text)}); create the bucket or {_credential_hint(remote)}")
        if "repository path is not a valid directory" in text:
            return (f"Triton found no repository at {remote}: nothing is stored under "
                    f"'{remote.prefix or '(bucket root)'}' in {where}; upload one there (tritonkit repo push "
                    f"FOLDER {remote}) or fix the path")
        if any(k in text for k in ("Failed to determine modification time", "Could not get MetaData",
                                   "Failed to get object", "Failed to get modification time")):
            return (f"Triton could not read the objects of {remote} ({_triton_reason(text)}); "
                    f"{_credential_hint(remote)}")
    return None


def bucket_verdict(remote: RemoteURL) -> str | None:
    """Why an S3 bucket could not be opened, asked once more with boto3 (Triton's S3 client says only
    "Check account credentials" for both): ``missing`` (404), ``refused`` (403), None when unknown.
    Credentials come from the same environment Triton had; nothing of them is shown."""
    if remote.scheme != "s3":
        return None
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return None
    try:
        client = boto3.client("s3", endpoint_url=remote.endpoint_url, config=Config(
            connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
        client.head_bucket(Bucket=remote.bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or code in ("404", "NoSuchBucket"):
            return "missing"
        if status in (401, 403) or code in ("403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
            return "refused"
        return None
    except (BotoCoreError, OSError, ValueError):
        return None
    return None


def _triton_reason(text: str) -> str:
    """Triton's sentence without its object URLs' noise, short enough for one line."""
    text = " ".join(text.split("\\n", 1)[0].split())
    return text if len(text) <= 240 else text[:237] + "..."


def check_ports(host: str, ports: dict[str, int]) -> None:
    """Refuse, in one line, a port that is already taken."""
    for what, port in ports.items():
        if port_in_use(host, port):
            raise ServerError(
                f"{what} port {port} on {host} is already in use; stop what holds it or choose "
                f"another with --{what}-port"
            )


def check_own_ports(pid: int, host: str, ports: dict[str, int], settle_s: float = 5.0) -> None:
    """Refuse a readiness answer that did not come from process ``pid`` (the server started here).

    Why: another process that took a port after :func:`check_ports` answered ``/v2/health/ready``
    while our tritonserver was still loading (or had failed to bind), and start-up reported ready.
    """
    deadline = time.monotonic() + settle_s  # metrics may bind just after HTTP answers
    mine = listening_ports(pid)
    while any(p not in mine for p in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
        mine = listening_ports(pid)
    for what, port in ports.items():
        if port not in mine:
            raise ServerError(
                f"{what} port {port} on {host} answers, but not from the tritonserver started here (pid {pid}): "
                f"another process took it after the port check; stop it or choose another --{what}-port"
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


def http_get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``url``; (status, body), with status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:  # noqa: S310 - local URL only
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


class EmbeddedServer:
    """A tritonserver process serving ``repository`` on ``host``.

    Use as a context manager, or ``start()`` / ``stop()``. ``admin_headers`` carries the header that
    the restricted APIs (shared memory, logging, trace, model repository) need; every server has one.
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
        backend_directory: str | os.PathLike[str] | None = None,
        load_at_start: bool = True,
        strict_config: bool = False,
        download_root: str | os.PathLike[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        # A URL goes to Triton as it reads it (parsed, so a bad one is refused here); a folder resolved.
        self.remote: RemoteURL | None = parse_remote(str(repository)) if is_remote(repository) else None
        self.repository: Path | str = self.remote.triton_url() if self.remote else Path(repository).resolve()
        # Remote only: the folder under which each start gets its own download folder (see download_dir).
        self.download_root = Path(download_root) if download_root else None
        self.download_dir: Path | None = None
        self.progress = progress
        self.host = host
        self.http_port = int(http_port)
        self.grpc_port = int(grpc_port)
        self.metrics_port = int(metrics_port)
        self.model_control = model_control
        self.poll_secs = int(poll_secs)
        self.extra_args = tuple(extra_args)
        # A throw-away server (load_check) judges models one by one: its own backends, nothing loaded at start.
        self.backend_directory = Path(backend_directory) if backend_directory else None
        self.load_at_start = load_at_start
        self.strict_config = strict_config
        self.admin_value = secrets.token_hex(16)
        self._log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._identity: ProcessIdentity | None = None
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
        return {ADMIN_HEADER: self.admin_value}

    # -- lifecycle ------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The exact tritonserver command line (after preparing the install)."""
        # First: without a C compiler nothing is copied, and the server is refused in one line.
        self._argv_key_lib = argv_key_library()
        install = prepare_triton()
        self._install = install
        cmd = [
            str(install.binary),
            *safe_flags(
                repository=str(self.repository), host=self.host, http_port=self.http_port,
                grpc_port=self.grpc_port, metrics_port=self.metrics_port,
                model_control=self.model_control, poll_secs=self.poll_secs, strict_config=self.strict_config,
            ),
            f"--backend-directory={self.backend_directory or install.backend_dir}",
            f"--cache-directory={install.cache_dir}",
            "--allow-gpu-metrics=false",
            "--exit-timeout-secs=5",
            *self.extra_args,
        ]
        return cmd if self.load_at_start else [a for a in cmd if not a.startswith("--load-model=")]

    def child_env(self) -> dict[str, str]:
        """The install's environment plus the key and the library that moves it into argv (see argv_key.c);
        for a remote repository, the download folder (credentials are the caller's environment, untouched)."""
        env = self._install.env()
        env[KEY_VARIABLE] = self.admin_value
        env["LD_PRELOAD"] = os.pathsep.join(p for p in (str(self._argv_key_lib), env.get("LD_PRELOAD", "")) if p)
        if self.remote is not None and self.download_dir is not None:
            env[MOUNT_VARIABLES[self.remote.scheme]] = str(self.download_dir)
        return env

    def _make_download_dir(self) -> None:
        """A private folder of this start for Triton's downloads of a remote repository, named after this
        process (``download-<pid>-*``: :func:`toolkit.serve.state.sweep_downloads` keeps a live maker's).

        Triton makes one ``folderXXXXXX`` per model version under it and removes it on a clean unload;
        a killed server leaves them, so :meth:`stop` removes the whole folder.
        """
        if self.remote is None:
            return
        root = self.download_root or tritonkit_home() / "downloads"
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(root)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise ServerError(f"{root} must be a folder of yours that nobody else can write to (Triton downloads "
                              "the repository's models into it); remove it and start again")
        self.download_dir = Path(tempfile.mkdtemp(prefix=f"download-{os.getpid()}-", dir=root))

    def remove_download_dir(self) -> None:
        """Remove this start's download folder (safe to call twice)."""
        if self.download_dir is not None:
            shutil.rmtree(self.download_dir, ignore_errors=True)
            self.download_dir = None

    def child_cwd(self) -> str | None:
        """A private, empty working folder for tritonserver.

        The python stub puts its working folder first on ``sys.path``: started from the caller's
        folder, a ``json.py`` or ``numpy.py`` lying there (a shared or download folder) was imported
        into every python model, running code as the server's user.
        """
        path = tritonkit_home() / "server-cwd"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise ServerError(f"{path} must be a folder of yours that nobody else can write to (it is tritonserver's "
                              "working folder); remove it and start again")
        return str(path)

    def _check_before_start(self) -> None:
        if self.remote is None:
            check_repository(Path(self.repository))
        else:
            check_endpoint(self.remote)
        check_ports(self.host, {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port})

    def _prepare_start(self) -> list[str]:
        """The checks every runtime makes before it starts, its command, and a log file to start it with."""
        self._check_before_start()
        cmd = self.command()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        return cmd

    def start(self, timeout: float | None = None) -> EmbeddedServer:
        """Start the server and wait until it is ready (``timeout`` s; default :func:`default_timeout`).

        SIGINT, SIGTERM and SIGHUP during start-up (on the main thread) stop the half-started server and
        raise :class:`~toolkit.serve.interrupts.StartInterrupted`: tritonserver runs in its own session and
        would otherwise outlive tritonkit unrecorded.

        Raises:
            ServerError: a port is taken, the repository is missing, the server exited (with its
                reasons per failed model), or it was not ready within ``timeout`` seconds.
        """
        if self._proc is not None and self._proc.poll() is None:
            return self
        if timeout is None:
            timeout = default_timeout(str(self.repository))
        cmd = self._prepare_start()
        t0 = time.monotonic()
        with interrupts_raise():
            try:
                self._make_download_dir()
                with signals_held(), open(self._log_path, "wb") as log:
                    # Own session: stop() finds the server's python stubs as the members of that session.
                    self._proc = subprocess.Popen(
                        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        env=self.child_env(), start_new_session=True, cwd=self.child_cwd(),
                    )
                    # Unreaped, so the pid is still this child's: its start time dates the stubs stop() may kill.
                    self._identity = identity_of(self._proc.pid)
                self._wait_ready(timeout)
                self._check_restricted()
            except BaseException:
                with signals_held():  # a second Ctrl-C must not cut the clean-up short
                    self.stop(timeout=10)
                raise
        self.ready_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        start = time.monotonic()
        deadline = start + timeout
        # Progress while loading: every 5 s from a remote repository (seconds to minutes), from a folder
        # only once loading has taken 15 s (it usually takes 1-3).
        every = 5.0
        next_note = start + (every if self.remote is not None else 15.0)
        ready_url = f"http://{self.http_url}/v2/health/ready"
        while True:
            if self._proc.poll() is not None:
                raise ServerError(self._failure_message(f"exited with code {self._proc.returncode}"))
            if http_get(ready_url, timeout=1.0)[0] == 200:
                self._check_own_ports()
                return
            now = time.monotonic()
            if now >= deadline:
                raise ServerError(self._failure_message(f"not ready after {timeout:g} s"))
            if self.progress is not None and now >= next_note:
                self.progress(self.loading_progress(now - start))
                next_note = now + every
            time.sleep(0.1)

    def loading_progress(self, elapsed: float) -> str:
        """One line on start-up so far, from Triton's log (its endpoints answer only once every model loaded)."""
        text = self.read_log()
        started = list(dict.fromkeys(re.findall(r'"loading: ([^:"]+):\d+"', text)))
        loaded = list(dict.fromkeys(re.findall(r"successfully loaded '([^']+)'", text)))
        where = f"from {self.repository}" if self.remote is not None else f"in {self.repository}"
        if not started:
            what = "listing the repository" if self.remote is not None else "reading the repository"
        else:
            # Triton names a model only when it starts loading it, so no total is known before the end.
            pending = [m for m in started if m not in loaded]
            what = f"{len(loaded)} model{'' if len(loaded) == 1 else 's'} loaded" + (
                f", loading {', '.join(pending[:3])}{'...' if len(pending) > 3 else ''}" if pending else "")
        return f"still starting {where}: {elapsed:.0f} s, {what}"

    def _check_own_ports(self) -> None:
        assert self._proc is not None
        check_own_ports(self._proc.pid, self.host,
                        {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port})

    def _check_restricted(self) -> None:
        """Refuse to serve unless the admin APIs answer the key and refuse everyone else.

        Were the preload library ignored, Triton would run with the public placeholder as its key;
        this catches that (and any other way the restriction could silently not hold).
        """
        url = f"http://{self.http_url}/v2/logging"
        with_key = http_get(url, timeout=5.0, headers=self.admin_headers)[0]
        without = http_get(url, timeout=5.0)[0]
        placeholder = http_get(url, timeout=5.0, headers={ADMIN_HEADER: KEY_PLACEHOLDER})[0]
        if with_key != 200 or without == 200 or placeholder == 200:
            raise ServerError(
                f"Triton did not take its admin key (logging API answered {with_key} with the key, {without} "
                f"without, {placeholder} with the placeholder), so it was stopped rather than serve with its "
                f"admin APIs open; check that LD_PRELOAD works here (log: {self._log_path})"
            )

    def read_log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace") if self._log_path else ""
        except OSError:
            return ""

    def _failure_message(self, what: str) -> str:
        text = self.read_log()
        if self.remote is not None:
            reason = remote_failure(text, self.remote)
            if reason:
                return f"{reason} (log: {self._log_path})"
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

    def detach(self) -> None:
        """Forget the process without stopping it (a detached server outlives this object; its download
        folder too: the run record names it, and `serve stop` removes it)."""
        self._proc = None
        self.download_dir = None

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully (SIGINT, then SIGTERM), then kill; safe to call twice.

        The python stubs are found before anything is signalled (members of the session the server
        leads) and killed through pidfds afterwards if they outlive it: no process group by number.
        """
        proc = self._proc
        if proc is None:
            self.remove_download_dir()  # a start that failed before Popen
            return
        ident = self._identity
        ours = ident is not None and self._session_is_ours(proc)
        leftovers = session_handles(proc.pid, ident.start_time) if ours and ident is not None else []
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
                proc.kill()
                proc.wait(10)
        # Stubs left behind by a killed server belong to its session; never leak them. A second look once
        # it is gone: a crashing server can still start a stub after the first one.
        if ours and ident is not None:
            seen = {h.identity.pid for h in leftovers}
            leftovers += [h for h in session_handles(proc.pid, ident.start_time) if h.identity.pid not in seen]
        for handle in leftovers:
            handle.send(signal.SIGKILL)
            handle.close()
        self._proc = None
        self.remove_download_dir()

    def _session_is_ours(self, proc: subprocess.Popen[bytes]) -> bool:
        """Session ``proc.pid`` is still this server's: true while the server is unreaped (its pid, hence
        its session number, cannot be reused); once reaped, only when no process holds that pid now
        (so nothing else can lead a session of that number)."""
        return proc.returncode is None or identity_of(proc.pid) is None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
