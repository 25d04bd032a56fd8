"""Kubernetes manifests for N Triton replicas serving one repository in object storage.

Why Kustomize and not a Helm chart: ``kubectl`` renders and applies a Kustomize tree (``kubectl kustomize``,
``kubectl apply -k``) with nothing else installed, offline, and the files are the plain manifests a reviewer
reads and a GitOps tool diffs; variants are overlays that patch the base instead of template logic. Helm
would add a tool to every user's and CI machine (it is not installed here; the Python embedding,
``helm-python-sdk``, is young and single-maintainer) and templates whose output is only seen after rendering.
tritonkit already computes every value (image from the plans' TensorRT, GPU count, probes), so a template
language would add nothing but a second place to get them wrong.

Layout written to ``--out``::

    base/            Deployment, Service, HPA, PDB, NetworkPolicy, ServiceMonitor, PrometheusRule
    overlays/cpu/    no GPU (the NGC image or a CPU stand-in via --image); written when there are no plans
    overlays/gpu/    nvidia.com/gpu requests and a GPU toleration; written when there are plans (or --gpus)
    monitoring/      prometheus-adapter rules (ConfigMap), Grafana dashboard (ConfigMap and JSON),
                     the alert rules as a plain Prometheus rules file
    kserve/          (--kserve) an InferenceService with the Triton runtime, the alternative to the above
    README.md        how to apply, and the Secrets to create (names and keys only: never values)

Triton runs with ``--model-control-mode=poll`` by default: tritonkit's publish protocol makes a new version
visible only when its config names it, so polling replicas pick it up without a restart (``none`` pins a
pod to what it loaded at start; a rollout then switches versions). The repository, logging, trace and
shared-memory APIs are restricted (``--http-restricted-api``/``--grpc-restricted-protocol``) to requests
carrying the admin key from a Secret, and the NetworkPolicy lets only labelled clients reach the inference
ports and only the monitoring namespace reach the metrics port.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import UsageError
from toolkit.deploy import monitoring
from toolkit.deploy.yamltext import dump
from toolkit.repository.remote import RemoteURL, is_remote, parse_remote
from toolkit.serve.container import IMAGE_REPO, choose_image
from toolkit.serve.embedded import ADMIN_HEADER, KEY_VARIABLE, RESTRICTED_APIS

PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
CONTAINER = "tritonserver"
TRITON_UID = 1000  # NGC's triton-server user
CLIENT_LABEL = "tritonkit.io/client"
ADMIN_KEY = "admin-key"  # the key inside the admin Secret
GCS_KEY = "credentials.json"
SECRET_MOUNT = "/var/run/secrets/tritonkit/storage"
QUEUE_METRIC = "triton_queue_us_per_request"
# DNS-1123 subdomain (Secret names) and DNS-1035 label (Service names start with a letter).
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII)
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?", re.ASCII)
QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?", re.ASCII)


@dataclass
class DeployOptions:
    """What ``deploy k8s`` writes; :meth:`validate` refuses a bad value in one line before anything is read."""

    repository: str
    name: str = "triton"
    namespace: str | None = None
    replicas: int = 2
    max_replicas: int | None = None
    image: str | None = None
    gpus: int | None = None  # per replica; None: 1 when the repository has plans, else 0
    secret: str = "tritonkit-storage"
    admin_secret: str | None = None  # None: "<name>-admin"
    model_control: str = "poll"
    poll_secs: int = 15
    queue_target_us: int = 20000
    alert_queue_us: int = 100000
    alert_failure_ratio: float = 0.01
    cpu: str = "2"
    memory: str = "4Gi"
    shm: str = "1Gi"
    scratch: str = "20Gi"
    monitoring_namespace: str = "monitoring"
    kserve: bool = False
    cluster_endpoint: str | None = None  # [https://]host:port the pods reach the same S3 storage at
    url: RemoteURL = field(init=False)  # where this machine reads the repository
    cluster_url: RemoteURL = field(init=False)  # where the pods read it

    def validate(self) -> None:
        if not is_remote(self.repository):
            raise UsageError(
                f"--repository {self.repository!r} is a local path; pods in a cluster cannot read this machine's "
                "files. Push it to object storage (`tritonkit repo push LOCAL s3://...`) and pass the s3://, gs:// "
                "or as:// URL")
        self.url = parse_remote(self.repository)
        self.cluster_url = self._cluster_url()
        _name(self.name, DNS1035_LABEL, "--name", 40, "a DNS-1035 label: lower-case letters, digits and '-', "
                                                        "starting with a letter")
        if self.namespace is not None:
            _name(self.namespace, DNS1123_LABEL, "--namespace", 63, "a DNS-1123 label")
        _name(self.monitoring_namespace, DNS1123_LABEL, "--monitoring-namespace", 63, "a DNS-1123 label")
        for value, what in ((self.secret, "--secret"), (self.admin_secret_name, "--admin-secret")):
            _name(value, DNS1123_SUBDOMAIN, what, 253, "a DNS-1123 name: lower-case letters, digits, '-' and '.', "
                                                       "starting and ending with a letter or digit")
        if self.replicas < 1:
            raise UsageError(f"--replicas {self.replicas}: at least 1 replica is needed")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise UsageError(f"--max-replicas {self.max_replicas} is below --replicas {self.replicas}; the autoscaler "
                             "needs max >= min")
        if self.gpus is not None and self.gpus < 0:
            raise UsageError(f"--gpus {self.gpus}: use 0 or more GPUs per replica")
        if self.model_control not in ("poll", "none"):
            raise UsageError(f"--model-control {self.model_control!r}: use poll or none (explicit needs a client "
                             "that loads models, which the restricted repository API refuses)")
        if self.poll_secs < 1:
            raise UsageError(f"--poll-secs {self.poll_secs}: use 1 or more seconds")
        if self.queue_target_us < 1 or self.alert_queue_us < 1:
            raise UsageError("queue-time targets must be at least 1 microsecond")
        if not 0 < self.alert_failure_ratio < 1:
            raise UsageError(f"--alert-failure-ratio {self.alert_failure_ratio}: use a fraction between 0 and 1")
        for value, what in ((self.cpu, "--cpu"), (self.memory, "--memory"), (self.shm, "--shm"),
                            (self.scratch, "--scratch")):
            if not QUANTITY.fullmatch(value):
                raise UsageError(f"{what} {value!r} is not a Kubernetes quantity; write e.g. 2, 500m, 4Gi")
        if self.image is not None and (not self.image or any(c.isspace() for c in self.image)):
            raise UsageError(f"--image {self.image!r} is not an image reference; write e.g. {IMAGE_REPO}:24.09-py3")

    def _cluster_url(self) -> RemoteURL:
        """The repository URL the pods use: ``--cluster-endpoint`` replaces an S3 endpoint only this machine reaches."""
        url = self.url
        if self.cluster_endpoint is not None:
            if url.scheme != "s3" or url.host is None:
                raise UsageError("--cluster-endpoint replaces the host:port of an s3://host:port/... URL; this "
                                 f"repository {url} names none")
            tail = f"{url.bucket}/{url.prefix}".rstrip("/")
            url = parse_remote(f"s3://{self.cluster_endpoint.rstrip('/')}/{tail}")
            if url.host is None:
                raise UsageError(f"--cluster-endpoint {self.cluster_endpoint!r}: write [https://]host:port")
        if url.host is not None and _loopback(url.host):
            raise UsageError(f"the S3 endpoint {url.host}:{url.port} is loopback: each pod would reach itself, not "
                             "your storage; pass --cluster-endpoint HOST:PORT (how the cluster reaches it)")
        return url

    @property
    def admin_secret_name(self) -> str:
        return self.admin_secret or f"{self.name}-admin"

    @property
    def maximum(self) -> int:
        return self.max_replicas if self.max_replicas is not None else max(self.replicas * 4, self.replicas + 1)


def _loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host in ("::1", "0.0.0.0")


def _name(value: str, pattern: re.Pattern[str], what: str, limit: int, rule: str) -> None:
    if not pattern.fullmatch(value) or len(value) > limit:
        raise UsageError(f"{what} {value!r} is not {rule}, at most {limit} characters")


@dataclass
class Plan:
    """The decided values: image, GPUs, variants."""

    image: str
    gpus: int
    has_plans: bool

    @property
    def overlays(self) -> list[str]:
        return (["cpu"] if not self.has_plans else []) + (["gpu"] if self.gpus > 0 else [])


def decide(opts: DeployOptions, plan_records: list[dict[str, Any]] | None) -> Plan:
    """Image and GPUs from the plans' build records (None: the repository was not read)."""
    has_plans = bool(plan_records)
    gpus = opts.gpus if opts.gpus is not None else (1 if has_plans else 0)
    if has_plans and gpus == 0:
        raise UsageError("the repository serves TensorRT plans, which need a GPU; drop --gpus 0 or publish ONNX")
    image = opts.image or choose_image(plan_records or [])
    return Plan(image, gpus, has_plans)


def labels(opts: DeployOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": opts.name,
            "app.kubernetes.io/component": "inference-server", "app.kubernetes.io/managed-by": "tritonkit"}


def selector(opts: DeployOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": opts.name}


def _meta(opts: DeployOptions, name: str | None = None) -> dict[str, Any]:
    return {"name": name or opts.name, "labels": labels(opts)}


def triton_args(opts: DeployOptions) -> list[str]:
    """tritonserver's flags in a pod: every interface (the pod's own), readiness that survives a version switch,
    restricted admin APIs."""
    apis = ",".join(RESTRICTED_APIS)
    key = f"$({KEY_VARIABLE})"  # expanded by the kubelet from the admin Secret
    args = [
        f"--model-repository={opts.cluster_url.triton_url()}",
        f"--model-control-mode={opts.model_control}",
    ]
    if opts.model_control == "poll":
        args.append(f"--repository-poll-secs={opts.poll_secs}")
    # Not strict: with strict readiness /v2/health/ready answers 400 on every replica at once while a polled
    # new version loads (measured by benchmarks/bench_replicas.py, 4-12 s per switch), though the old version
    # keeps answering; the readiness probe would empty the Service on every publish. Triton starts its
    # endpoints only after the start-up load, and --exit-on-error ends a pod whose models fail it, so
    # "ready" still means "loaded" at start.
    args += [
        "--strict-readiness=false",
        "--exit-on-error=true",
        f"--http-port={PORTS['http']}",
        f"--grpc-port={PORTS['grpc']}",
        f"--metrics-port={PORTS['metrics']}",
        "--allow-metrics=true",
        "--metrics-config=summary_latencies=true",
        "--exit-timeout-secs=30",
        f"--http-restricted-api={apis}:{ADMIN_HEADER}={key}",
        f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={key}",
    ]
    return args


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def storage_env(opts: DeployOptions) -> list[dict[str, Any]]:
    """Credentials as references to the Secret's keys (the values never leave the cluster)."""
    if opts.cluster_url.scheme == "s3":
        return [_secret_env("AWS_ACCESS_KEY_ID", opts.secret, "AWS_ACCESS_KEY_ID"),
                _secret_env("AWS_SECRET_ACCESS_KEY", opts.secret, "AWS_SECRET_ACCESS_KEY"),
                _secret_env("AWS_DEFAULT_REGION", opts.secret, "AWS_DEFAULT_REGION", optional=True),
                _secret_env("AWS_SESSION_TOKEN", opts.secret, "AWS_SESSION_TOKEN", optional=True)]
    if opts.cluster_url.scheme == "as":
        return [_secret_env("AZURE_STORAGE_ACCOUNT", opts.secret, "AZURE_STORAGE_ACCOUNT"),
                _secret_env("AZURE_STORAGE_KEY", opts.secret, "AZURE_STORAGE_KEY")]
    return [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": f"{SECRET_MOUNT}/{GCS_KEY}"}]


def deployment(opts: DeployOptions, plan: Plan) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}}
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": opts.shm}},
        # /tmp: Triton localizes a remote repository into a fresh /tmp/folderXXXXXX at each start; the
        # python backend's stubs and ONNX Runtime write scratch files there too.
        {"name": "tmp", "emptyDir": {"sizeLimit": opts.scratch}},
    ]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": "/tmp"}]
    if opts.cluster_url.scheme == "gs":
        volumes.append({"name": "storage-credentials",
                        "secret": {"secretName": opts.secret, "items": [{"key": GCS_KEY, "path": GCS_KEY}]}})
        mounts.append({"name": "storage-credentials", "mountPath": SECRET_MOUNT, "readOnly": True})
    container = {
        "name": CONTAINER,
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["tritonserver"],
        "args": triton_args(opts),
        "ports": [{"name": k, "containerPort": v, "protocol": "TCP"} for k, v in PORTS.items()],
        "env": [*storage_env(opts), _secret_env(KEY_VARIABLE, opts.admin_secret_name, ADMIN_KEY),
                {"name": "HOME", "value": "/tmp"}],
        # Loading from object storage takes seconds to minutes: the startup probe allows 10 minutes before
        # liveness takes over; readiness then gates traffic without failing during a version switch.
        "startupProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 3},
        # Endpoints drop the pod before Triton stops taking requests; then Triton drains in-flight ones.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "10"]}}},
        "resources": {"requests": {"cpu": opts.cpu, "memory": opts.memory}, "limits": {"memory": opts.memory}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(opts),
        "spec": {
            "replicas": opts.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(opts)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(opts)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": TRITON_UID, "runAsGroup": TRITON_UID,
                                        "fsGroup": TRITON_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    # replicas on different nodes where possible: one node's loss or drain takes one replica
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                   "whenUnsatisfiable": "ScheduleAnyway",
                                                   "labelSelector": {"matchLabels": selector(opts)}}],
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def service(opts: DeployOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(opts),
            "spec": {"type": "ClusterIP", "selector": selector(opts),
                     "ports": [{"name": k, "port": v, "targetPort": k, "protocol": "TCP"} for k, v in PORTS.items()]}}


def hpa(opts: DeployOptions) -> dict[str, Any]:
    """Scale on the average queue time per request that prometheus-adapter serves per pod."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(opts),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": opts.name},
            "minReplicas": opts.replicas,
            "maxReplicas": opts.maximum,
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": QUEUE_METRIC},
                "target": {"type": "AverageValue", "averageValue": str(opts.queue_target_us)}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 60,
                            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
                "scaleDown": {"stabilizationWindowSeconds": 300,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
            },
        },
    }


def pdb(opts: DeployOptions) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(opts),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(opts)},
                     "unhealthyPodEvictionPolicy": "AlwaysAllow"}}


def network_policy(opts: DeployOptions) -> dict[str, Any]:
    """Inference ports from labelled clients in any namespace; metrics only from the monitoring namespace."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(opts),
        "spec": {
            "podSelector": {"matchLabels": selector(opts)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}}],
                 "ports": [{"protocol": "TCP", "port": PORTS["http"]}, {"protocol": "TCP", "port": PORTS["grpc"]}]},
                {"from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": opts.monitoring_namespace}}}],
                 "ports": [{"protocol": "TCP", "port": PORTS["metrics"]}]},
            ],
        },
    }


def service_monitor(opts: DeployOptions) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": _meta(opts),
            "spec": {"selector": {"matchLabels": selector(opts)},
                     "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s", "scheme": "http"}]}}


def prometheus_rule(opts: DeployOptions) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": _meta(opts),
            "spec": monitoring.alert_rules(opts)}


def kustomization(resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **extra,
            "resources": resources}


def gpu_patch(opts: DeployOptions, plan: Plan) -> dict[str, Any]:
    gpus = {"nvidia.com/gpu": str(plan.gpus)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": opts.name},
            "spec": {"template": {"spec": {
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": CONTAINER, "resources": {"requests": gpus, "limits": gpus}}]}}}}


def render_files(opts: DeployOptions, plan: Plan) -> dict[str, str]:
    """Every file of the output tree, relative path -> text."""
    from toolkit.deploy import kserve

    files: dict[str, str] = {}
    base = {"deployment.yaml": deployment(opts, plan), "service.yaml": service(opts), "hpa.yaml": hpa(opts),
            "pdb.yaml": pdb(opts), "networkpolicy.yaml": network_policy(opts),
            "servicemonitor.yaml": service_monitor(opts), "prometheusrule.yaml": prometheus_rule(opts)}
    for name, obj in base.items():
        files[f"base/{name}"] = dump(obj)
    extra = {"namespace": opts.namespace} if opts.namespace else {}
    files["base/kustomization.yaml"] = dump(kustomization(list(base), **extra))
    variant = {"pairs": {"tritonkit.io/variant": ""}, "includeSelectors": False}
    for overlay in plan.overlays:
        mark = {**variant, "pairs": {"tritonkit.io/variant": overlay}}
        if overlay == "gpu":
            files["overlays/gpu/gpu-resources.yaml"] = dump(gpu_patch(opts, plan))
            files["overlays/gpu/kustomization.yaml"] = dump(kustomization(
                ["../../base"], labels=[mark], patches=[{"path": "gpu-resources.yaml"}]))
        else:
            files["overlays/cpu/kustomization.yaml"] = dump(kustomization(["../../base"], labels=[mark]))
    files.update(monitoring.files(opts))
    if opts.kserve:
        files.update(kserve.files(opts, plan))
    files["README.md"] = readme(opts, plan)
    return files


def readme(opts: DeployOptions, plan: Plan) -> str:
    """How to apply the tree: the Secrets to create first (names and keys; values come from files, never a
    command line), the prerequisites, the variants and what the NetworkPolicy lets in."""
    ns = f" -n {opts.namespace}" if opts.namespace else ""
    scheme = opts.cluster_url.scheme
    storage = {
        "s3": f"kubectl create secret generic {opts.secret}{ns} --from-env-file=storage.env",
        "as": f"kubectl create secret generic {opts.secret}{ns} --from-env-file=storage.env",
        "gs": f"kubectl create secret generic {opts.secret}{ns} --from-file={GCS_KEY}=KEY.json",
    }[scheme]
    keys = {"s3": "storage.env: `AWS_ACCESS_KEY_ID=...` and `AWS_SECRET_ACCESS_KEY=...` lines, optionally "
                  "`AWS_DEFAULT_REGION`, `AWS_SESSION_TOKEN`",
            "as": "storage.env: `AZURE_STORAGE_ACCOUNT=...` and `AZURE_STORAGE_KEY=...` lines",
            "gs": "KEY.json: a service-account key file"}[scheme]
    lines = [
        f"# Triton on Kubernetes: {opts.cluster_url.triton_url()}",
        "",
        f"Written by `tritonkit deploy k8s`: image `{plan.image}`, {opts.replicas} replica(s) autoscaled up to "
        f"{opts.maximum} on queue time per request (target {opts.queue_target_us} us), {plan.gpus} GPU(s) per "
        f"replica, model control `{opts.model_control}`.",
        "",
        "1. Create the Secrets; these files reference them by name and never hold a value (keep the files below "
        "outside this folder, which `deploy k8s --force` replaces):",
        f"   - storage credentials from a file ({keys}; mode 600, kept out of version control):",
        f"     `{storage}`",
        "   - the key for Triton's restricted repository, logging, trace and shared-memory APIs:",
        f"     `od -An -N32 -tx1 /dev/urandom | tr -d ' \\n' > admin.key` (hex: no '=' or ':' that "
        "Triton's flag syntax would split on, no newline) then "
        f"`kubectl create secret generic {opts.admin_secret_name}{ns} --from-file={ADMIN_KEY}=admin.key`",
        "2. Install the Prometheus Operator (ServiceMonitor, PrometheusRule), kube-state-metrics and "
        f"prometheus-adapter; `kubectl apply -k monitoring` (namespace `{opts.monitoring_namespace}`) and run the "
        f"adapter with `--config` on ConfigMap `{opts.name}-prometheus-adapter`'s `config.yaml` (or copy its rule "
        "into the adapter's own rules). Grafana's sidecar picks up the dashboard ConfigMap (label "
        "`grafana_dashboard`); `monitoring/grafana-dashboard.json` imports by hand too.",
        "3. Apply one variant: " + ", ".join(f"`kubectl apply -k overlays/{o}`" for o in plan.overlays)
        + f" (recommended here: `overlays/{plan.overlays[-1]}`).",
        "",
        f"Ingress: the inference ports (8000 HTTP, 8001 gRPC) only from pods labelled `{CLIENT_LABEL}: \"true\"` in "
        f"any namespace, the metrics port (8002) only from namespace `{opts.monitoring_namespace}`; kubelet probes "
        "come from the node, which common network plugins allow. A ClusterIP Service balances gRPC connections, "
        "not requests: clients should open several channels, or go through an L7 proxy.",
        f"The admin key reaches tritonserver's command line inside the pod (`$({KEY_VARIABLE})`), visible only to "
        "processes in that container.",
    ]
    if opts.kserve:
        lines += ["", "Alternative: `kubectl apply -k kserve` (a KServe InferenceService with the Triton runtime; "
                      "see kserve/README.md)."]
    return "\n".join(lines) + "\n"


def _same_tree(folder: Path, files: dict[str, str]) -> bool:
    found = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    if found != set(files):
        return False
    return all((folder / rel).read_text(encoding="utf-8", errors="replace") == text for rel, text in files.items())


GENERATED_TOP = frozenset({"README.md", "base", "overlays", "monitoring", "kserve"})  # what write_tree may replace


def write_tree(out: Path, files: dict[str, str], force: bool = False) -> bool:
    """Write ``files`` under ``out`` all at once (a sibling folder renamed in); False when already identical.

    An existing ``out`` with other content is refused unless ``force``; it is then replaced whole, never merged.
    """
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out} exists and is not a folder; choose another path")
    if out.is_dir():
        if _same_tree(out, files):
            return False
        if any(out.iterdir()) and not force:
            raise UsageError(f"--out {out} already holds other files; choose an empty or new folder, or pass "
                             "--force to replace it")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in GENERATED_TOP)
        if foreign:  # e.g. the Secret files its README asks for: --force never deletes what it did not write
            raise UsageError(f"--out {out} holds {', '.join(foreign[:3])}, which deploy k8s did not write; move "
                             "them out of the folder (Secret files belong outside it), then run again")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for rel, text in files.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.chmod(stage, 0o755)
        if out.is_dir():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.rename(out, trash / "old")
            try:
                os.rename(stage, out)
            except BaseException:
                os.rename(trash / "old", out)  # the old tree goes back: replaced whole or not at all
                os.rmdir(trash)
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return True


def generate(opts: DeployOptions, out: str | os.PathLike[str], *, force: bool = False) -> tuple[Plan, bool]:
    """Validate, read the repository's plans (unless --image and --gpus say everything), write the tree.

    Returns the plan and whether anything was written (False: ``out`` already held exactly this).
    """
    from toolkit.deploy.source import inspect_repository

    opts.validate()
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise UsageError(f"--out {out_path} exists and is not a folder; choose another path")
    records: list[dict[str, Any]] | None = None
    if opts.image is None or opts.gpus is None:
        records = inspect_repository(opts.url).plan_records
    plan = decide(opts, records)
    files = render_files(opts, plan)
    try:
        return plan, write_tree(out_path, files, force)
    except OSError as exc:
        raise UsageError(f"--out {out_path}: cannot write there ({exc.strerror or exc}); choose a folder you can "
                         "write") from None
