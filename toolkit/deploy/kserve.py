"""The KServe alternative: one ``InferenceService`` (serving.kserve.io/v1beta1) with the Triton runtime.

KServe runs its own storage initializer: it copies ``storageUri`` into ``/mnt/models`` when a pod starts
and Triton serves that copy, so a newly published version goes live with the next pod (a new revision or a
restart), not by polling. The storage initializer takes S3 credentials from the Secrets of the predictor's
ServiceAccount, and a non-AWS endpoint from that Secret's annotations, so the URL is written without its
``host:port`` and the README says which annotations to add. KServe picks the ``kserve-tritonserver``
runtime for ``modelFormat: triton``; ``runtimeVersion`` is the image tag matched to the plans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolkit.deploy.yamltext import dump

if TYPE_CHECKING:
    from toolkit.deploy.k8s import DeployOptions, Plan


def storage_uri(opts: DeployOptions) -> str:
    """The URL as KServe reads it: ``s3://bucket/path`` (the endpoint goes in the Secret's annotations)."""
    url = opts.cluster_url
    tail = f"{url.bucket}/{url.prefix}".rstrip("/")
    if url.scheme == "as":
        return f"https://{url.account}.blob.core.windows.net/{tail}"
    return f"{url.scheme}://{tail}"


def inference_service(opts: DeployOptions, plan: Plan) -> dict[str, Any]:
    from toolkit.deploy.k8s import labels

    resources: dict[str, Any] = {"requests": {"cpu": opts.cpu, "memory": opts.memory},
                                 "limits": {"memory": opts.memory}}
    if plan.gpus:
        resources["requests"]["nvidia.com/gpu"] = str(plan.gpus)
        resources["limits"]["nvidia.com/gpu"] = str(plan.gpus)
    from toolkit.serve.container import IMAGE_REPO

    # NVIDIA's image: KServe's Triton runtime takes the release as runtimeVersion; another image (a CPU
    # stand-in) replaces the runtime container's image.
    name, _, tag = plan.image.rpartition(":") if ":" in plan.image.rsplit("/", 1)[-1] else (plan.image, "", "")
    image = {"runtimeVersion": tag} if name == IMAGE_REPO and tag else {"image": plan.image}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": opts.name, "labels": labels(opts)},
        "spec": {"predictor": {
            "minReplicas": opts.replicas,
            "maxReplicas": opts.maximum,
            "serviceAccountName": f"{opts.name}-storage",
            "model": {
                "modelFormat": {"name": "triton"},
                "protocolVersion": "v2",
                **image,
                "storageUri": storage_uri(opts),
                "args": ["--strict-readiness=true", "--metrics-config=summary_latencies=true"],
                "resources": resources,
            },
        }},
    }


def service_account(opts: DeployOptions) -> dict[str, Any]:
    from toolkit.deploy.k8s import labels

    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": f"{opts.name}-storage", "labels": labels(opts)},
            "secrets": [{"name": opts.secret}]}


def readme(opts: DeployOptions) -> str:
    url = opts.cluster_url
    lines = [f"# KServe InferenceService `{opts.name}`", "",
             f"Storage: `{storage_uri(opts)}`, credentials from Secret `{opts.secret}` through ServiceAccount "
             f"`{opts.name}-storage`."]
    if url.scheme == "s3" and url.host:
        lines += ["", f"Annotate the Secret so KServe's storage initializer reaches `{url.host}:{url.port}`:",
                  f"`serving.kserve.io/s3-endpoint: {url.host}:{url.port}`, "
                  f"`serving.kserve.io/s3-usehttps: \"{1 if url.tls else 0}\"`."]
    lines += ["", "Versions published later are served by the next pod, not by polling."]
    return "\n".join(lines) + "\n"


def files(opts: DeployOptions, plan: Plan) -> dict[str, str]:
    from toolkit.deploy.k8s import kustomization

    extra = {"namespace": opts.namespace} if opts.namespace else {}
    return {
        "kserve/inferenceservice.yaml": dump(inference_service(opts, plan)),
        "kserve/serviceaccount.yaml": dump(service_account(opts)),
        "kserve/kustomization.yaml": dump(kustomization(["serviceaccount.yaml", "inferenceservice.yaml"], **extra)),
        "kserve/README.md": readme(opts),
    }
