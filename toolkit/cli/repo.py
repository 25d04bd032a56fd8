"""``tritonkit repo``: publish, list, roll back, prune and validate model repository versions.

:mod:`toolkit.repository.versions` loads Triton's protobuf, so it is imported inside the commands
(``tritonkit --help`` stays fast).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from contract.errors import RepositoryError
from toolkit.cli.options import IntList, json_option, repository_option
from toolkit.pipeline import Context, PublishStep, plans_by_capability, run_steps
from toolkit.repository.options import ServingOptions
from toolkit.repository.sources import read_labels_file

SERVING = ServingOptions()  # the library's defaults, shown by --help


@click.group()
def repo() -> None:
    """Versioned Triton model repositories: add, list, rollback, prune, validate."""


@repo.command("add")
@click.argument("name")
@repository_option()
@click.option("--onnx", "onnx_path", type=click.Path(), help="ONNX model to publish.")
@click.option("--plan", "plans", multiple=True, type=click.Path(),
              help="TensorRT plan to publish (repeat for several GPUs); its record is PLAN.json.")
@click.option("--plan-record", "plan_records", multiple=True, type=click.Path(),
              help="Record of each --plan, in the same order (default: PLAN.json beside it).")
@click.option("--max-batch", default=SERVING.max_batch_size, show_default=True, type=int)
@click.option("--dynamic-batching/--no-dynamic-batching", default=SERVING.dynamic_batching, show_default=True)
@click.option("--max-queue-delay-us", default=SERVING.max_queue_delay_us, show_default=True, type=int)
@click.option("--preferred-batch", type=IntList(allow_empty=True), default=None,
              help="Comma-separated preferred batch sizes, e.g. 8,16.")
@click.option("--max-queue-size", default=SERVING.max_queue_size, show_default=True, type=int, help="0 = unbounded.")
@click.option("--instances", default=SERVING.instances, show_default=True, type=int)
@click.option("--kind", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
              help="Instance kind (default: gpu for --plan, cpu for --onnx).")
@click.option("--keep-versions", default=SERVING.keep_versions, show_default=True, type=int,
              help="version_policy latest N.")
@click.option("--warmup/--no-warmup", default=SERVING.warmup, show_default=True)
@click.option("--labels", "labels_file", type=click.Path(), help="One label per line; default: from the model.")
@click.option("--load", is_flag=True,
              help="Then load it on the detached `tritonkit serve --model-control explicit` server.")
@json_option()
def add(name: str, repository: str, onnx_path: str | None, plans: tuple[str, ...], plan_records: tuple[str, ...],
        max_batch: int, dynamic_batching: bool, max_queue_delay_us: int, preferred_batch: list[int] | None,
        max_queue_size: int, instances: int, kind: str | None, keep_versions: int, warmup: bool,
        labels_file: str | None,
        load: bool, as_json: bool) -> None:
    """Publish a NEW version of NAME (never modifies an existing one).

    Inputs, outputs, dtypes and dims come from the ONNX graph (--onnx) or the plan record (--plan),
    never from flags. A TensorRT plan's max batch may not exceed its profile's maximum.
    """
    if bool(onnx_path) == bool(plans):
        raise RepositoryError("repo add: give either --onnx FILE or --plan FILE (with its record)")
    labels = read_labels_file(labels_file) if labels_file else None
    opts = ServingOptions(
        max_batch_size=max_batch, dynamic_batching=dynamic_batching, max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=preferred_batch or [], max_queue_size=max_queue_size, instances=instances,
        kind=kind or ("gpu" if plans else "cpu"), keep_versions=keep_versions, warmup=warmup,
    )
    ctx = Context(repository=Path(repository), name=name, options=opts, labels=labels,
                  onnx=Path(onnx_path) if onnx_path else None)
    if plans:
        ctx.plans, ctx.records = plans_by_capability(plans, plan_records)
    pub = run_steps([PublishStep(label="")], ctx).published[-1]
    loaded = None
    if load:
        from toolkit.serve.runner import load_detached

        loaded = load_detached(name)
    if as_json:
        click.echo(json.dumps({"model": pub.model, "version": pub.version, "path": str(pub.path), "loaded": loaded}))
    else:
        click.echo(f"published {pub.model} version {pub.version} -> {pub.path}")
        if loaded is not None:
            ready = sorted(int(m["version"]) for m in loaded if m["state"] == "READY")
            click.echo(f"loaded {name}: ready versions {ready}")


@repo.command("list")
@repository_option()
@json_option()
def list_cmd(repository: str, as_json: bool) -> None:
    """Models and versions: platform, size, max batch, metrics, created, status.

    Status says whether the live config serves a version, or that it is unpublished (a publish was
    killed before its config went live); symlinked folders are flagged and never followed.
    """
    from toolkit.repository.versions import list_models

    rows = list_models(repository)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from toolkit.repository.validate.problem import clean

    click.echo(f"{'model':<24} {'ver':>4} {'platform':<18} {'size':>10} {'maxbatch':>8}  {'accuracy':>8}  "
               f"{'created':<25}  status")
    for r in rows:
        acc = r["metrics"].get("test_accuracy")
        acc_text = f"{acc:.4f}" if isinstance(acc, (int, float)) else ""
        click.echo(
            f"{clean(r['model']):<24} {str(r['version'] or '-'):>4} {clean(r['platform']):<18} {r['size_bytes']:>10} "
            f"{str(r['max_batch_size']):>8}  {acc_text:>8}  {clean(r['created'] or ''):<25}  {clean(r['status'])}"
        )


@repo.command("rollback")
@click.argument("name")
@click.option("--to", "to", required=True, type=int, help="Version to serve again.")
@repository_option()
def rollback_cmd(name: str, to: int, repository: str) -> None:
    """Publish a copy of version --to as the newest version (history is kept).

    The old version's files, manifest and recorded config are checked first; the new live config
    serves the copy with that version's own recorded config.
    """
    from toolkit.repository.versions import rollback

    pub = rollback(repository, name, to)
    click.echo(f"rolled back {name}: version {pub.version} is a copy of version {to}")


@repo.command("prune")
@click.argument("name")
@click.option("--keep", required=True, type=int)
@repository_option()
def prune_cmd(name: str, keep: int, repository: str) -> None:
    """Delete all but the newest --keep versions of NAME."""
    from toolkit.repository.versions import prune

    removed = prune(repository, name, keep)
    click.echo(f"pruned {name}: removed versions {removed or 'none'}")


def _attach_validate() -> None:
    from toolkit.cli.repo_validate import validate

    repo.add_command(validate, "validate")


_attach_validate()
