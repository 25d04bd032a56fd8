"""Repository addresses in object storage, spelled the way Triton reads them.

Triton serves a repository straight from ``s3://``, ``gs://`` and ``as://`` URLs; tritonkit takes the
same spelling everywhere a ``--repository`` is asked for, so one string goes from ``repo add`` to
``serve`` to a Kubernetes manifest unchanged. Parsing follows Triton's own rules (an S3 endpoint needs
a port; bucket names are lower-case ``[0-9a-z.-]``) so a URL accepted here is one Triton can open.
Credentials never appear in a URL: they come from the environment or a profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contract.errors import UsageError

SCHEMES = ("s3", "gs", "as")
_S3_ENDPOINT = re.compile(r"(?:(?P<proto>https?)://)?(?P<host>[0-9A-Za-z.-]+):(?P<port>[0-9]{1,5})")
_BUCKET = re.compile(r"[0-9a-z][0-9a-z.-]{1,61}[0-9a-z]", re.ASCII)
_SEGMENT = re.compile(r"[0-9A-Za-z._-]+", re.ASCII)
_AZURE_ACCOUNT = re.compile(r"[0-9a-z]{3,24}", re.ASCII)


@dataclass(frozen=True)
class RemoteURL:
    """One object-storage repository: where the server is (S3 only), the bucket and the key prefix."""

    scheme: str  # "s3", "gs" or "as"
    bucket: str  # the S3/GCS bucket, or the Azure container
    prefix: str = ""  # key prefix without leading or trailing "/" ("" for the bucket's root)
    host: str | None = None  # S3-compatible endpoint (None: the provider's own)
    port: int | None = None
    tls: bool = False
    account: str | None = None  # Azure storage account

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the repository's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint for an S3 client (``http://host:port``), None for AWS itself."""
        if self.host is None:
            return None
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def triton_url(self) -> str:
        """The URL as ``tritonserver --model-repository`` takes it."""
        tail = f"{self.bucket}/{self.prefix}".rstrip("/")
        if self.scheme == "as":
            return f"as://{self.account}/{tail}"
        if self.scheme == "s3" and self.host is not None:
            proto = "https://" if self.tls else ""
            return f"s3://{proto}{self.host}:{self.port}/{tail}"
        return f"{self.scheme}://{tail}"

    def __str__(self) -> str:
        return self.triton_url()


def is_remote(repository: object) -> bool:
    """True for a string that names object storage (``s3://``, ``gs://``, ``as://``)."""
    return isinstance(repository, str) and repository.split("://", 1)[0] in SCHEMES and "://" in repository


def _segments(text: str, url: str) -> list[str]:
    parts = [p for p in text.split("/") if p]
    for part in parts:
        if not _SEGMENT.fullmatch(part) or part in (".", ".."):
            raise UsageError(f"repository URL {url!r}: path segment {part!r} is not one Triton can read; use "
                             "letters, digits, '.', '-' and '_' only")
    return parts


def _bucket(name: str, url: str, what: str = "bucket") -> str:
    if not _BUCKET.fullmatch(name) or ".." in name:
        raise UsageError(f"repository URL {url!r}: {what} name {name!r} is not valid; use 3-63 lower-case letters, "
                         "digits, '.' and '-', starting and ending with a letter or digit")
    return name


def parse_remote(url: str) -> RemoteURL:
    """Parse ``s3://[http(s)://host:port/]bucket[/path]``, ``gs://bucket[/path]`` or
    ``as://account/container[/path]``; a malformed URL is refused in one line that says how to spell it."""
    if not is_remote(url):
        raise UsageError(f"{url!r} is not an object-storage URL; use s3://[host:port/]bucket/path, gs://bucket/path "
                         "or as://account/container/path")
    if any(c.isspace() for c in url) or "@" in url or "?" in url or "#" in url:
        raise UsageError(f"repository URL {url!r} holds spaces, '@', '?' or '#'; credentials never go in a URL "
                         "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile) and a path is plain")
    scheme, rest = url.split("://", 1)
    if scheme == "s3":
        endpoint = _S3_ENDPOINT.match(rest)
        host = port = None
        tls = False
        if endpoint and rest[endpoint.end():endpoint.end() + 1] in ("/", ""):
            host, port = endpoint["host"], int(endpoint["port"])
            tls = endpoint["proto"] == "https"
            if not 1 <= port <= 65535:
                raise UsageError(f"repository URL {url!r}: port {port} is not in 1..65535")
            rest = rest[endpoint.end():]
        elif rest.startswith(("http://", "https://")):
            raise UsageError(f"repository URL {url!r}: an S3 endpoint needs a port, as Triton reads it: "
                             "s3://https://host:443/bucket/path")
        parts = _segments(rest, url)
        if not parts:
            raise UsageError(f"repository URL {url!r} names no bucket; use s3://[host:port/]bucket/path")
        return RemoteURL("s3", _bucket(parts[0], url), "/".join(parts[1:]), host, port, tls)
    parts = _segments(rest, url)
    if scheme == "gs":
        if not parts:
            raise UsageError(f"repository URL {url!r} names no bucket; use gs://bucket/path")
        return RemoteURL("gs", _bucket(parts[0], url), "/".join(parts[1:]))
    if len(parts) < 2 or not _AZURE_ACCOUNT.fullmatch(parts[0]):
        raise UsageError(f"repository URL {url!r}: Azure needs as://account/container/path (account: 3-24 "
                         "lower-case letters and digits)")
    return RemoteURL("as", _bucket(parts[1], url, "container"), "/".join(parts[2:]), account=parts[0])
