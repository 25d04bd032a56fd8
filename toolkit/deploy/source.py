"""What a deployment needs to know about the repository in object storage: its models and their plans.

The image must carry the TensorRT that built the plans Triton will load, and a pod needs a GPU only when
there are plans, so ``deploy k8s`` reads (never writes) the live ``config.pbtxt`` of every model and the
``manifest.json`` of the versions it names. Plan build records live in the manifest under
``plan_records`` (see :func:`toolkit.repository.publish.publish_plans`). Only ``s3://`` is read here
(boto3, credentials from the environment or a profile); for ``gs://`` and ``as://`` the caller passes
``--image`` and ``--gpus`` instead.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from contract.errors import RepositoryError, UsageError
from toolkit.repository.remote import RemoteURL

_MAX_OBJECT = 64 * 1024 * 1024
_VERSION = re.compile(r"[1-9][0-9]*", re.ASCII)


@dataclass
class RepositoryFacts:
    """Models in the repository, the versions their live configs serve, and those versions' plan records."""

    models: list[str] = field(default_factory=list)
    served: dict[str, list[int]] = field(default_factory=dict)
    plan_records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_plans(self) -> bool:
        return bool(self.plan_records)


def _client(url: RemoteURL) -> Any:
    import boto3
    from botocore.config import Config

    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    return boto3.client("s3", endpoint_url=url.endpoint_url, region_name=region,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                                      connect_timeout=10, read_timeout=30))


def _fail(url: RemoteURL, exc: Exception) -> RepositoryError:
    """One line for an unreadable repository, naming the way to write the manifests without reading it."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        why = "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    elif isinstance(exc, EndpointConnectionError):
        why = f"its endpoint {url.endpoint_url or 'AWS S3'} does not answer from here"
    elif isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        why = f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    else:
        why = type(exc).__name__
    return RepositoryError(f"cannot read repository {url} to find its plans ({why}); fix access, or pass --image "
                           "and --gpus to write the manifests without reading it")


def _read(client: Any, url: RemoteURL, key: str) -> bytes:
    obj = client.get_object(Bucket=url.bucket, Key=key)
    if int(obj.get("ContentLength", 0)) > _MAX_OBJECT:
        raise RepositoryError(f"{url.bucket}/{key} is larger than {_MAX_OBJECT >> 20} MiB; not a tritonkit manifest")
    return obj["Body"].read(_MAX_OBJECT + 1)


def inspect_repository(url: RemoteURL) -> RepositoryFacts:
    """The repository's models, served versions and plan build records (S3 only)."""
    from toolkit.repository.config import parse_config
    from toolkit.repository.validate.manifest import named_versions

    if url.scheme != "s3":
        raise UsageError(f"reading {url.scheme}:// repositories is not supported here; pass --image and --gpus "
                         "so the manifests are written without reading it")
    try:
        client = _client(url)
        prefix = url.key() + "/" if url.key() else ""
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=prefix):
            keys += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
        facts = RepositoryFacts()
        configs = sorted(k.split("/")[0] for k in keys if k.count("/") == 1 and k.endswith("/config.pbtxt"))
        for model in configs:
            present = sorted({int(k.split("/")[1]) for k in keys
                              if k.startswith(model + "/") and k.count("/") >= 2
                              and _VERSION.fullmatch(k.split("/")[1])})
            cfg = parse_config(_read(client, url, url.key(model, "config.pbtxt")).decode("utf-8", "replace"),
                               f"{url}/{model}/config.pbtxt")
            served = [v for v in named_versions(cfg, present) if v in present]
            facts.models.append(model)
            facts.served[model] = served
            for version in served:
                key = f"{model}/{version}/manifest.json"
                if key not in keys:
                    continue
                try:
                    manifest = json.loads(_read(client, url, url.key(key)))
                except ValueError:
                    raise RepositoryError(f"{url}/{key} is not JSON; republish this version") from None
                records = manifest.get("plan_records") if isinstance(manifest, dict) else None
                if isinstance(records, dict):
                    facts.plan_records += [r for r in records.values() if isinstance(r, dict)]
                elif cfg.platform == "tensorrt_plan" or cfg.backend == "tensorrt":
                    facts.plan_records.append({"model": model, "version": version})
    except (RepositoryError, UsageError):
        raise
    except Exception as exc:  # noqa: BLE001 - botocore's many errors become one line
        raise _fail(url, exc) from None
    if not facts.models:
        raise RepositoryError(f"repository {url} holds no model (no <model>/config.pbtxt); publish one with "
                              "`tritonkit repo push` first")
    return facts
