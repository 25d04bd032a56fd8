"""A model repository in S3-compatible object storage: the objects, the writer lease, errors in one line.

Why a separate storage: object storage has no rename and no folder modification time, so the local
protocol (stage, rename in, replace the config) cannot be copied. What replaces it
(:mod:`toolkit.repository.remote_publish`): a version's objects are uploaded and verified against its
manifest while no config names them, and ``config.pbtxt`` is written last, so a polling Triton only ever
sees complete versions. Triton notices a change only when the newest object's LastModified grows
(second resolution), so the config is rewritten in a later second when it shares one with an object
written before it.

Writers are serialized by a lease object (``.tritonkit-lease`` under the repository prefix, not inside
any model folder, so writing it never wakes a polling Triton) taken with a conditional write
(``If-None-Match: *``) and released, renewed or taken over (only once expired) with ``If-Match`` on its
ETag, so two writers can never both hold it.

Credentials come only from boto3's own chain (environment, profiles, instance roles): never from a URL,
an argument or a log line. Every botocore failure becomes one :class:`RepositoryError` line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from contract.errors import RepositoryError, UsageError
from toolkit.repository.remote import RemoteURL, is_remote, parse_remote
from toolkit.repository.storage import ANY_NUMBER_RE, CONFIG, VERSION_RE

LEASE = ".tritonkit-lease"
LEASE_SECONDS = 60.0  # renewed every quarter; a dead writer's lease is taken over after it (at once when the
# writer was a process on this machine that is gone); TRITONKIT_S3_LEASE_SECONDS overrides it
MULTIPART_THRESHOLD = 64 * 1024 * 1024  # larger files go up in parts (then verified by size and metadata)
# Steps of a remote publish, in order; TRITONKIT_FAULT_AT=<step> kills the writer right after one (tests).
S3_STEPS = ("s3_leased", "s3_pulled", "s3_staged", "s3_hold_config", "s3_first_object", "s3_objects_uploaded",
            "s3_verified", "s3_labels", "s3_config_written", "s3_deleted")


def fault(step: str) -> None:
    """Test hook: ``TRITONKIT_FAULT_AT=<step>`` kills the process right after that step."""
    if os.environ.get("TRITONKIT_FAULT_AT") == step:
        os.kill(os.getpid(), 9)


def unsupported(url: RemoteURL) -> RepositoryError:
    """GCS and Azure: Triton serves them, tritonkit cannot write them (no emulator to test a writer here)."""
    name = {"gs": "gs://", "as": "as://"}[url.scheme]
    return RepositoryError(
        f"{name} repositories are served by Triton but tritonkit cannot write them yet; publish into a folder "
        f"('repo add --repository DIR') and copy it with the provider's tool (gsutil rsync / azcopy), or use s3://")


def storage_for(url: str | RemoteURL) -> S3Storage:
    """The storage of an object-storage URL; gs:// and as:// refused in one line."""
    remote = url if isinstance(url, RemoteURL) else parse_remote(url)
    if remote.scheme != "s3":
        raise unsupported(remote)
    return S3Storage(remote)


@dataclass(frozen=True)
class ObjectInfo:
    """One object as a listing reports it."""

    key: str
    size: int
    etag: str
    modified: datetime


def sha256_b64(hex_digest: str) -> str:
    """S3's ChecksumSHA256 spelling (base64 of the raw digest) of a hex sha256."""
    return base64.b64encode(binascii.unhexlify(hex_digest)).decode()


def file_digests(path: Path) -> tuple[str, str]:
    """(sha256 hex, md5 hex) of a file, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - md5 only to compare with S3's ETag
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


class S3Storage:
    """:class:`~toolkit.repository.storage.RepositoryStorage`'s reads, and the object operations the remote
    publish protocol is built from, on one ``s3://`` repository."""

    def __init__(self, url: str | RemoteURL) -> None:
        self.url = url if isinstance(url, RemoteURL) else parse_remote(url)
        if self.url.scheme != "s3":
            raise unsupported(self.url)
        self._client: Any = None
        self.requests = 0  # object requests made (benchmarks report them)
        self.held: Lease | None = None  # the writer lease while :meth:`lease` is entered

    # -- the client and its errors -------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise RepositoryError("s3:// repositories need boto3; install it with 'pip install boto3'") from None
            config = Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=60,
                            retries={"max_attempts": 3, "mode": "standard"})
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            try:
                self._client = boto3.session.Session().client("s3", endpoint_url=self.url.endpoint_url,
                                                               region_name=region, config=config)
            except Exception as exc:  # noqa: BLE001 - a profile error, a bad config file: one line
                raise RepositoryError(f"{self.url}: cannot make an S3 client ({type(exc).__name__}: "
                                      f"{_first_line(exc)}); check AWS_PROFILE and ~/.aws/config") from None
        return self._client

    def call(self, op: str, what: str, passthrough: tuple[str, ...] = (), **kwargs: Any) -> Any:
        """``client.<op>(**kwargs)``; a botocore failure becomes one RepositoryError line about ``what``
        (a ClientError whose code is in ``passthrough`` is raised as is, for the caller to handle)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        self.requests += 1
        try:
            return getattr(self.client, op)(**kwargs)
        except (NoCredentialsError, PartialCredentialsError):
            raise RepositoryError(
                f"{self.url}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment "
                "or choose a profile with AWS_PROFILE (never on the command line)") from None
        except EndpointConnectionError:
            where = self.url.endpoint_url or "AWS S3"
            raise RepositoryError(f"{self.url}: cannot reach the S3 endpoint {where}; check the host and port in "
                                  "the URL and that the server runs") from None
        except ClientError as exc:
            if self.is_code(exc, *passthrough):
                raise
            raise self.client_error(exc, what) from None
        except BotoCoreError as exc:
            raise RepositoryError(f"{self.url}: {what} failed ({type(exc).__name__}: {_first_line(exc)}); "
                                  "check the endpoint and retry") from None

    def client_error(self, exc: Any, what: str) -> RepositoryError:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (code == "404" and what.startswith("list")):
            return RepositoryError(f"{self.url}: bucket {self.url.bucket!r} does not exist; create it (e.g. "
                                   f"'aws s3 mb s3://{self.url.bucket}') or fix the URL")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return RepositoryError(f"{self.url}: access denied while trying to {what}; give these credentials "
                                   "read and write access to the bucket and prefix")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return RepositoryError(f"{self.url}: the S3 credentials were refused ({code}); check "
                                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile")
        return RepositoryError(f"{self.url}: {what} failed ({code or status}: "
                               f"{_first_line(exc.response.get('Error', {}).get('Message', ''))}); retry, or check "
                               "the bucket's permissions")

    @staticmethod
    def is_code(exc: Any, *codes: str) -> bool:
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) in codes

    # -- objects -------------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return self.url.key(*parts)

    def relative(self, key: str) -> str:
        """A key relative to the repository prefix."""
        prefix = self.url.prefix + "/" if self.url.prefix else ""
        return key[len(prefix):] if key.startswith(prefix) else key

    def check_bucket(self) -> None:
        """One line for a missing bucket, refused credentials or an unreachable endpoint, before any work."""
        self.call("head_bucket", "list the bucket", Bucket=self.url.bucket)

    def list(self, relative: str = "") -> list[ObjectInfo]:
        """Every object under ``relative`` (a folder, relative to the repository prefix)."""
        prefix = self.key(relative)
        prefix = prefix + "/" if prefix else ""
        out: list[ObjectInfo] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.url.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.call("list_objects_v2", "list the repository", **kwargs)
            for o in page.get("Contents", []):
                out.append(ObjectInfo(self.relative(o["Key"]), int(o["Size"]), str(o.get("ETag", "")).strip('"'),
                                      o["LastModified"]))
            if not page.get("IsTruncated"):
                return out
            token = page.get("NextContinuationToken")

    def get_bytes(self, relative: str, what: str, limit: int | None = None) -> bytes:
        """An object's bytes; RepositoryError when missing or larger than ``limit``."""
        from botocore.exceptions import ClientError

        try:
            resp = self.call("get_object", f"read {relative}", ("NoSuchKey", "404"), Bucket=self.url.bucket,
                             Key=self.key(relative))
        except ClientError:
            raise RepositoryError(f"{self.url}/{relative}: {what} is missing") from None
        if limit is not None and int(resp.get("ContentLength", 0)) > limit:
            raise RepositoryError(f"{self.url}/{relative}: {what} is larger than {limit} bytes; remove it")
        return self.read_body(resp, relative, what)

    def read_body(self, resp: dict[str, Any], relative: str, what: str) -> bytes:
        """The body of a GET: a connection that breaks mid-download is one line, not a botocore traceback."""
        from botocore.exceptions import BotoCoreError

        try:
            return resp["Body"].read()
        except (BotoCoreError, OSError) as exc:
            raise RepositoryError(f"{self.url}/{relative}: reading the {what} failed mid-download "
                                  f"({_first_line(exc)}); nothing was changed, run the command again") from None

    def read_text(self, relative: str, what: str, limit: int) -> str:
        try:
            return self.get_bytes(relative, what, limit).decode()
        except UnicodeDecodeError:
            raise RepositoryError(f"{self.url}/{relative}: the {what} is not UTF-8 text; remove it") from None

    def exists(self, relative: str) -> dict[str, Any] | None:
        """HEAD of an object (with its checksum), or None when absent."""
        from botocore.exceptions import ClientError

        try:
            return self.call("head_object", f"look at {relative}", ("NoSuchKey", "404", "NotFound"),
                             Bucket=self.url.bucket, Key=self.key(relative), ChecksumMode="ENABLED")
        except ClientError:
            return None

    def put_file(self, relative: str, path: Path, sha256: str | None = None) -> int:
        """Upload a file with its sha256 as S3 checksum and metadata; the bytes sent."""
        sha, _md5 = file_digests(path) if sha256 is None else (sha256, "")
        size = path.stat().st_size
        if size > MULTIPART_THRESHOLD:
            from boto3.s3.transfer import TransferConfig

            self.requests += 1
            try:
                self.client.upload_file(str(path), self.url.bucket, self.key(relative),
                                        ExtraArgs={"Metadata": {"sha256": sha}},
                                        Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD))
            except Exception as exc:  # noqa: BLE001 - boto3's transfer wraps ClientError
                raise RepositoryError(f"{self.url}/{relative}: upload failed ({type(exc).__name__}: "
                                      f"{_first_line(exc)}); retry") from None
            return size
        with open(path, "rb") as fh:
            self.call("put_object", f"upload {relative}", Bucket=self.url.bucket, Key=self.key(relative), Body=fh,
                      ChecksumSHA256=sha256_b64(sha), Metadata={"sha256": sha})
        return size

    def put_bytes(self, relative: str, data: bytes, **extra: Any) -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        return self.call("put_object", f"write {relative}", Bucket=self.url.bucket, Key=self.key(relative),
                         Body=data, ChecksumSHA256=sha256_b64(sha), Metadata={"sha256": sha}, **extra)

    def object_sha256(self, relative: str, head: dict[str, Any] | None = None) -> str | None:
        """The sha256 (hex) S3 holds for an object (its checksum, else tritonkit's metadata), None if unknown."""
        head = head if head is not None else self.exists(relative)
        if head is None:
            return None
        b64 = head.get("ChecksumSHA256")
        if b64 and "-" not in b64:
            try:
                return binascii.hexlify(base64.b64decode(b64)).decode()
            except (ValueError, binascii.Error):
                pass
        return (head.get("Metadata") or {}).get("sha256")

    def delete(self, relatives: list[str]) -> int:
        """Delete objects (1000 a request); how many."""
        for i in range(0, len(relatives), 1000):
            chunk = relatives[i:i + 1000]
            resp = self.call("delete_objects", "delete objects", Bucket=self.url.bucket,
                             Delete={"Objects": [{"Key": self.key(r)} for r in chunk], "Quiet": True})
            if resp.get("Errors"):
                err = resp["Errors"][0]
                raise RepositoryError(f"{self.url}/{self.relative(err.get('Key', ''))}: cannot delete "
                                      f"({err.get('Code')}); check the bucket's permissions and retry")
        return len(relatives)

    # -- the repository, as RepositoryStorage reads it ----------------------------------------------
    def model_names(self) -> list[str]:
        prefix = self.key() + "/" if self.url.prefix else ""
        names: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.url.bucket, "Prefix": prefix, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.call("list_objects_v2", "list the repository", **kwargs)
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        return sorted(n for n in names if n and not n.startswith("."))

    def version_numbers(self, model: str) -> list[int]:
        return sorted({int(p) for p in self.version_names(model) if VERSION_RE.fullmatch(p)})

    def version_names(self, model: str) -> set[str]:
        """Every numeric name under the model (a new version never reuses one, as locally)."""
        names = set()
        for o in self.list(model):
            first = o.key[len(model) + 1:].split("/", 1)
            if len(first) == 2 and ANY_NUMBER_RE.fullmatch(first[0]):
                names.add(first[0])
        return names

    def lock(self) -> AbstractContextManager[Lease]:
        return self.lease()

    def lease(self, timeout: float = 120.0, seconds: float | None = None) -> AbstractContextManager[Lease]:
        return _lease(self, timeout, lease_seconds() if seconds is None else seconds)

    def config_key(self, model: str) -> str:
        return f"{model}/{CONFIG}"

    def write_config(self, model: str, text: str) -> None:
        """Write ``model``'s config last and make sure a polling Triton notices it.

        Triton reloads only when the newest object's LastModified grows; S3 keeps whole seconds, so a
        config written in the same second as an object before it could go unnoticed: then it is
        written again in a later second.
        """
        data = text.encode()
        self.put_bytes(self.config_key(model), data)
        for _ in range(5):
            others = [o.modified for o in self.list(model) if o.key != self.config_key(model)]
            mine = self.exists(self.config_key(model))
            if mine is None:
                raise RepositoryError(f"{self.url}/{model}/{CONFIG}: the config vanished right after it was "
                                      "written (another writer without the lease?); check the bucket")
            if not others or mine["LastModified"] > max(others):
                return
            time.sleep(max(0.05, 1.0 - (time.time() % 1.0)) + 0.05)
            self.put_bytes(self.config_key(model), data)
        raise RepositoryError(f"{self.url}/{model}/{CONFIG}: written, but after 5 tries still not newer than the "
                              "model's other objects, so a polling Triton may not notice it (clock skew between "
                              "this machine and the store?); run the command again")

    def replace_config(self, model: str, text: str) -> None:
        self.write_config(model, text)

    def commit_version(self, model: str, stage: Path, version: int, label_file: str | None, *,
                       beside: bool, new_model: bool) -> None:
        """Make a staged version (``stage / "model"``, as local publishing stages it) live with the
        object-storage protocol; the caller holds :meth:`lock`. ``beside``/``new_model`` need no special
        case here: a model new to the bucket always gets a hold config first."""
        from toolkit.repository.remote_publish import ModelPlan, Transfer, apply_plan

        staged = stage / "model"
        plan = ModelPlan(model, versions={version: staged / str(version)},
                         labels=[staged / label_file] if label_file else [], config=(staged / CONFIG).read_text())
        apply_plan(self, plan, self._lease_held(), Transfer())

    def remove_version(self, model: str, version: int) -> None:
        """Delete a version no config names any more (every object under it); the caller holds :meth:`lock`."""
        self._lease_held()
        self.delete([o.key for o in self.list(f"{model}/{version}")])

    def _lease_held(self) -> Lease:
        if self.held is None:
            raise RepositoryError(f"{self.url}: a write without the writer lease; take it with 'with storage.lock():'")
        return self.held


@dataclass
class Lease:
    """The writer lease this process holds: its object's ETag and owner token."""

    storage: S3Storage
    token: str
    etag: str
    seconds: float
    lost: str = ""
    guard: threading.Lock = field(default_factory=threading.Lock, repr=False)  # renew (thread) vs check

    def body(self) -> bytes:
        return json.dumps({"owner": self.token, "host": socket.gethostname(), "machine": machine_id(),
                           "started": process_started(os.getpid()),
                           "pid": os.getpid(), "expires": time.time() + self.seconds}).encode()

    def renew(self) -> None:
        """Extend the lease; when another writer took it over (we were presumed dead), remember that."""
        from botocore.exceptions import ClientError

        with self.guard:
            try:
                resp = self.storage.client.put_object(Bucket=self.storage.url.bucket, Key=self.storage.key(LEASE),
                                                      Body=self.body(), IfMatch=f'"{self.etag}"')
                self.etag = str(resp["ETag"]).strip('"')
            except ClientError as exc:
                if S3Storage.is_code(exc, "PreconditionFailed", "412", "NoSuchKey", "404"):
                    self.lost = "another writer took the lease over"
            except Exception:  # noqa: BLE001, S110 - a transient failure: the next renewal retries
                pass

    def check(self) -> None:
        """Before a step that others would see (the config): the lease must still be ours."""
        with self.guard:
            head = self.storage.exists(LEASE)
            etag = self.etag
        if self.lost or head is None or str(head.get("ETag", "")).strip('"') != etag:
            raise RepositoryError(f"{self.storage.url}: the writer lease {LEASE} is no longer held by this writer "
                                  "(it expired and another writer took it over); nothing more was changed: run "
                                  "the command again")


def _lease_state(storage: S3Storage) -> tuple[dict[str, Any], str] | None:
    from botocore.exceptions import ClientError

    try:
        resp = storage.call("get_object", "read the writer lease", ("NoSuchKey", "404"), Bucket=storage.url.bucket,
                            Key=storage.key(LEASE))
    except ClientError:
        return None
    etag = str(resp.get("ETag", "")).strip('"')
    try:
        data = json.loads(storage.read_body(resp, LEASE, "writer lease"))
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        data = {"expires": 0}  # unreadable: treated as expired
    return data, etag


@contextmanager
def _lease(storage: S3Storage, timeout: float, seconds: float) -> Iterator[Lease]:
    """Take the repository's writer lease (conditional create; an expired one taken over by ETag), renew it
    in the background, release it (only if still ours)."""
    from botocore.exceptions import ClientError

    storage.check_bucket()
    lease = Lease(storage, uuid.uuid4().hex, "", seconds)
    deadline = time.monotonic() + timeout
    holder = ""
    while True:
        try:
            resp = storage.call("put_object", "take the writer lease", _CONFLICT, Bucket=storage.url.bucket,
                                Key=storage.key(LEASE), Body=lease.body(), IfNoneMatch="*")
            lease.etag = str(resp["ETag"]).strip('"')
            break
        except ClientError:
            pass  # held by another writer
        state = _lease_state(storage)
        if state is not None:
            data, etag = state
            holder = f"{data.get('host', '?')} pid {data.get('pid', '?')}"
            if float(data.get("expires", 0) or 0) < time.time() or dead_here(data):  # take it over by its ETag
                try:
                    resp = storage.call("put_object", "take over the writer lease", _CONFLICT,
                                        Bucket=storage.url.bucket, Key=storage.key(LEASE), Body=lease.body(),
                                        IfMatch=f'"{etag}"')
                    lease.etag = str(resp["ETag"]).strip('"')
                    break
                except ClientError:
                    pass  # another writer was quicker
        if time.monotonic() > deadline:
            raise RepositoryError(f"{storage.url}: another writer ({holder or 'unknown'}) holds the lease {LEASE} "
                                  f"for over {timeout:.0f}s; wait for it (a dead writer's lease expires after "
                                  f"{seconds:.0f}s)")
        time.sleep(0.2 + (uuid.uuid4().int % 100) / 500)
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(seconds / 4):
            lease.renew()

    renewer = threading.Thread(target=keep, name="tritonkit-lease", daemon=True)
    renewer.start()
    storage.held = lease
    try:
        yield lease
    finally:
        storage.held = None
        stop.set()
        renewer.join(timeout=5)
        try:
            storage.client.delete_object(Bucket=storage.url.bucket, Key=storage.key(LEASE), IfMatch=f'"{lease.etag}"')
        except Exception:  # noqa: BLE001, S110 - not ours any more, or unreachable: it expires by itself
            pass


_CONFLICT = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey")


def lease_seconds() -> float:
    """The lease's life: TRITONKIT_S3_LEASE_SECONDS, or 60 s."""
    text = os.environ.get("TRITONKIT_S3_LEASE_SECONDS", "")
    if not text:
        return LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 86400:
        raise UsageError(f"TRITONKIT_S3_LEASE_SECONDS={text[:20]!r} is not a number of seconds from 1 to 86400; "
                         "unset it for the default 60")
    return value


def machine_id() -> str:
    """Whose process table a lease's pid is in: a hash of the machine id (confidential: never stored raw), the
    boot and the pid namespace, so two containers sharing a machine id never judge each other's pids."""
    parts = []
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            parts.append(Path(path).read_text().strip()[:64])
            break
        except OSError:
            continue
    if not parts:
        return ""
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        return ""
    return hashlib.sha256("|".join(["tritonkit-lease", *parts]).encode()).hexdigest()[:32]


def process_started(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22): a pid reused by another
    process has another."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def dead_here(holder: dict[str, Any]) -> bool:
    """Whether a lease's holder was a process on this machine that is gone: then its lease need not expire."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or holder.get("host") != socket.gethostname():
        return False
    if not machine_id() or holder.get("machine") != machine_id():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    started = holder.get("started")
    if isinstance(started, int) and process_started(pid) not in (None, started):
        return True  # the pid now belongs to another process
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing either
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _first_line(value: object) -> str:
    text = str(value).strip().splitlines()
    return text[0][:200] if text else ""


def require_s3(repository: str) -> RemoteURL:
    """The parsed URL of an ``s3://`` repository; gs:// and as:// refused in one line."""
    if not is_remote(repository):
        raise UsageError(f"{repository!r} is not an object-storage URL; use s3://[host:port/]bucket/path")
    url = parse_remote(repository)
    if url.scheme != "s3":
        raise unsupported(url)
    return url
