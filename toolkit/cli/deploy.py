"""``tritonkit deploy``: manifests that run a repository in object storage on a cluster."""

from __future__ import annotations

import click


@click.group()
def deploy() -> None:
    """Write deployment manifests for a repository in object storage."""


@deploy.command("k8s")
@click.option("--repository", required=True,
              help="The repository's object-storage URL (s3://[host:port/]bucket/path, gs://..., as://...).")
@click.option("--out", "out", required=True, type=click.Path(), help="Folder to write the Kustomize tree into.")
@click.option("--name", default="triton", show_default=True, help="Name of the Deployment, Service and the rest.")
@click.option("--namespace", default=None, help="Namespace to set in the kustomizations (default: kubectl's).")
@click.option("--replicas", default=2, show_default=True, type=int, help="Triton replicas (the autoscaler's minimum).")
@click.option("--max-replicas", default=None, type=int, help="The autoscaler's maximum (default: 4 x --replicas).")
@click.option("--image", default=None,
              help="Triton image (default: the NGC release whose TensorRT built the repository's plans).")
@click.option("--gpus", default=None, type=int, help="GPUs per replica (default: 1 when there are plans, else 0).")
@click.option("--secret", default="tritonkit-storage", show_default=True,
              help="Secret holding the storage credentials (referenced by name; never read or written).")
@click.option("--admin-secret", default=None, help="Secret with key admin-key for Triton's restricted APIs "
                                                   "(default: NAME-admin).")
@click.option("--model-control", type=click.Choice(["poll", "none"]), default="poll", show_default=True,
              help="poll: replicas load newly published versions; none: a pod serves what it loaded at start.")
@click.option("--poll-secs", default=15, show_default=True, type=int, help="Seconds between repository polls.")
@click.option("--queue-target-us", default=20000, show_default=True, type=int,
              help="Autoscale to keep each pod's average queue time per request near this (microseconds).")
@click.option("--alert-queue-us", default=100000, show_default=True, type=int,
              help="Alert when a model's queue time per request stays above this (microseconds).")
@click.option("--cpu", default="2", show_default=True, help="CPU request per replica.")
@click.option("--memory", default="4Gi", show_default=True, help="Memory request and limit per replica.")
@click.option("--monitoring-namespace", default="monitoring", show_default=True,
              help="Namespace of Prometheus (allowed to scrape) and of the adapter/dashboard ConfigMaps.")
@click.option("--cluster-endpoint", default=None,
              help="[https://]host:port at which pods reach the S3 endpoint named in --repository (when this "
                   "machine reaches it at another address, e.g. a port-forward).")
@click.option("--kserve", is_flag=True, help="Also write kserve/: a KServe InferenceService (Triton runtime).")
@click.option("--force", is_flag=True, help="Replace --out when it holds other files.")
def k8s(repository: str, out: str, name: str, namespace: str | None, replicas: int, max_replicas: int | None,
        image: str | None, gpus: int | None, secret: str, admin_secret: str | None, model_control: str,
        poll_secs: int, queue_target_us: int, alert_queue_us: int, cpu: str, memory: str,
        monitoring_namespace: str, cluster_endpoint: str | None, kserve: bool,
        force: bool) -> None:
    """Write a Kustomize base, cpu/gpu overlays and monitoring assets for Triton replicas serving --repository.

    The repository is read (credentials from the environment or a profile) only to find its plans' TensorRT
    version; --image with --gpus skips that. Credentials are referenced through --secret, never written.
    """
    from toolkit.deploy.k8s import DeployOptions, generate

    opts = DeployOptions(
        repository=repository, name=name, namespace=namespace, replicas=replicas, max_replicas=max_replicas,
        image=image, gpus=gpus, secret=secret, admin_secret=admin_secret, model_control=model_control,
        poll_secs=poll_secs, queue_target_us=queue_target_us, alert_queue_us=alert_queue_us, cpu=cpu,
        memory=memory, monitoring_namespace=monitoring_namespace, kserve=kserve,
        cluster_endpoint=cluster_endpoint,
    )
    plan, written = generate(opts, out, force=force)
    what = "wrote" if written else "unchanged:"
    click.echo(f"{what} {out} (image {plan.image}, {plan.gpus} GPU(s) per replica); apply with "
               f"`kubectl apply -k {out}/overlays/{plan.overlays[-1]}` after creating the Secrets in {out}/README.md")
