"""Shared helpers for the deploy tests: the CLI, a moto S3 server with small repositories, rendering, validation.

Only configs and manifests matter to ``deploy k8s`` (it reads plan build records, never model files), so the
repositories here are written object by object: one of ONNX models, one whose served version holds TensorRT
plans (and an older, unserved version built with another TensorRT, which must not count), one whose plans
no known container release can run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.objectstore import MotoServer

TRITONKIT = str(Path(sys.executable).with_name("tritonkit"))
SCHEMAS = Path(__file__).with_name("schemas")
KUBE_VERSIONS = ("1.29", "1.32", "1.35", "1.37")
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
               ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
               ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice.json"}
CLUSTER_ENDPOINT = "minio.storage.svc:9000"

ONNX_CONFIG = 'name: "{name}"\nplatform: "onnxruntime_onnx"\nversion_policy {{ specific {{ versions: 1 }} }}\n'
PLAN_CONFIG = 'name: "{name}"\nplatform: "tensorrt_plan"\nversion_policy {{ specific {{ versions: 2 }} }}\n'


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``tritonkit ARGS`` as a user runs it (its own process, its own exit code and stderr)."""
    import os

    return subprocess.run([TRITONKIT, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def kubectl_or_skip() -> str:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl is not installed here, so `kubectl kustomize` cannot render the manifests")
    return exe


def promtool_or_skip() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool (Debian package prometheus) is not installed here, so rules cannot be tested")
    return exe


def render(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize FOLDER`` parsed into objects (kustomize is what `kubectl apply -k` runs)."""
    import yaml

    done = subprocess.run([kubectl_or_skip(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def validate_object(obj: dict[str, Any]) -> list[str]:
    """Validate one object: core kinds against every KUBE_VERSIONS schema (strict), CRDs against ours.

    Returns the versions/schemas it passed; any failure or missing schema raises AssertionError.
    """
    import jsonschema
    import kubernetes_validate

    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    schema_file = CRD_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))
    if schema_file is not None:
        schema = json.loads((SCHEMAS / schema_file).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
                  for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)]
        assert not errors, f"{where} does not match {schema_file}: {errors}"
        return [schema_file]
    passed = []
    for version in KUBE_VERSIONS:
        try:
            passed.append(kubernetes_validate.validate(obj, version, strict=True))
        except kubernetes_validate.SchemaNotFoundError as exc:  # an unknown kind only warns in the CLI: a failure here
            raise AssertionError(f"{where}: no Kubernetes {version} schema ({exc.message})") from None
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where} is invalid for Kubernetes {version}: "
                                 f"{'.'.join(map(str, exc.path))}: {exc.message}") from None
    return passed


def _put(client: Any, bucket: str, key: str, body: str | bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def _plan_manifest(name: str, version: int, trt: str) -> str:
    record = {"tensorrt_version": trt, "max_batch_size": 8, "inputs": [], "outputs": []}
    return json.dumps({"model": name, "version": version, "plan_records": {"8.9": record}})


@pytest.fixture(scope="session")
def deploy_s3(s3_server: MotoServer) -> MotoServer:
    """The session's S3 server (tests/conftest.py), without credentials in the environment."""
    return s3_server


@pytest.fixture
def s3_env(s3: MotoServer) -> MotoServer:
    """The S3 server with its dummy credentials in this test's environment (inherited by the CLI)."""
    return s3


@pytest.fixture(scope="session")
def repos(deploy_s3: MotoServer) -> dict[str, str]:
    """Repository URLs on the moto server: ``onnx``, ``plans`` (TensorRT 10.4 served), ``unknown_trt``, ``empty``."""
    bucket = deploy_s3.make_bucket(f"deploy-{uuid.uuid4().hex[:8]}")
    client = deploy_s3.client()
    _put(client, bucket, "onnx/digits/config.pbtxt", ONNX_CONFIG.format(name="digits"))
    _put(client, bucket, "onnx/digits/1/manifest.json", json.dumps({"model": "digits", "version": 1}))
    _put(client, bucket, "onnx/digits/1/model.onnx", b"not read")
    _put(client, bucket, "plans/digits_trt/config.pbtxt", PLAN_CONFIG.format(name="digits_trt"))
    _put(client, bucket, "plans/digits_trt/1/manifest.json", _plan_manifest("digits_trt", 1, "10.7.0.23"))
    _put(client, bucket, "plans/digits_trt/2/manifest.json", _plan_manifest("digits_trt", 2, "10.4.0.26"))
    _put(client, bucket, "plans/digits_trt/2/model.plan", b"not read")
    _put(client, bucket, "plans/digits/config.pbtxt", ONNX_CONFIG.format(name="digits"))
    _put(client, bucket, "plans/digits/1/manifest.json", json.dumps({"model": "digits", "version": 1}))
    _put(client, bucket, "oldtrt/old/config.pbtxt", PLAN_CONFIG.format(name="old").replace("versions: 2",
                                                                                          "versions: 1"))
    _put(client, bucket, "oldtrt/old/1/manifest.json", _plan_manifest("old", 1, "8.6.1"))
    _put(client, bucket, "empty/README", "nothing")
    return {k: deploy_s3.url(bucket, k) for k in ("onnx", "plans", "oldtrt", "empty")}


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes): to prove a refused command changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
