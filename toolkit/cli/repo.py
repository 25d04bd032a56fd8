"""``tritonkit repo``: publish, list, roll back, prune and validate model repository versions."""

from __future__ import annotations

import json

import click

from contract.errors import RepositoryError


@click.group()
def repo() -> None:
    """Versioned Triton model repositories: add, list, rollback, prune, validate."""


def _int_list(value: str | None) -> list[int]:
    if not value:
        return []
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give integers separated by commas, e.g. 8,16") from None


@repo.command("add")
@click.argument("name")
@click.option("--repository", default="model_repository", show_default=True, type=click.Path())
@click.option("--onnx", "onnx_path", type=click.Path(), help="ONNX model to publish.")
@click.option("--plan", "plans", multiple=True, type=click.Path(),
              help="TensorRT plan to publish (repeat for several GPUs); its record is PLAN.json.")
@click.option("--plan-record", "plan_records", multiple=True, type=click.Path(),
              help="Record of each --plan, in the same order (default: PLAN.json beside it).")
@click.option("--max-batch", default=32, show_default=True, type=int)
@click.option("--dynamic-batching/--no-dynamic-batching", default=True, show_default=True)
@click.option("--max-queue-delay-us", default=100, show_default=True, type=int)
@click.option("--preferred-batch", default=None, help="Comma-separated preferred batch sizes, e.g. 8,16.")
@click.option("--max-queue-size", default=0, show_default=True, type=int, help="0 = unbounded.")
@click.option("--instances", default=1, show_default=True, type=int)
@click.option("--kind", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
              help="Instance kind (default: gpu for --plan, cpu for --onnx).")
@click.option("--keep-versions", default=1, show_default=True, type=int, help="version_policy latest N.")
@click.option("--warmup/--no-warmup", default=True, show_default=True)
@click.option("--labels", "labels_file", type=click.Path(), help="One label per line; default: from the model.")
@click.option("--load", is_flag=True,
              help="Then load it on the detached `tritonkit serve --model-control explicit` server.")
@click.option("--json", "as_json", is_flag=True)
def add(name: str, repository: str, onnx_path: str | None, plans: tuple[str, ...], plan_records: tuple[str, ...],
        max_batch: int, dynamic_batching: bool, max_queue_delay_us: int, preferred_batch: str | None,
        max_queue_size: int, instances: int, kind: str | None, keep_versions: int, warmup: bool,
        labels_file: str | None,
        load: bool, as_json: bool) -> None:
    """Publish a NEW version of NAME (never modifies an existing one).

    Inputs, outputs, dtypes and dims come from the ONNX graph (--onnx) or the plan record (--plan),
    never from flags. A TensorRT plan's max batch may not exceed its profile's maximum.
    """
    from toolkit.repository.config import ServingOptions
    from toolkit.repository.publish import publish_onnx

    if bool(onnx_path) == bool(plans):
        raise RepositoryError("repo add: give either --onnx FILE or --plan FILE (with its record)")
    labels = None
    if labels_file:
        from contract.fileio import read_regular_text

        try:
            text = read_regular_text(labels_file, limit=64 * 1024 * 1024)
        except FileNotFoundError:
            raise RepositoryError(f"{labels_file}: labels file does not exist; give one label per line") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RepositoryError(f"{labels_file}: cannot read labels ({exc}); give a UTF-8 text file, "
                                  "one label per line") from None
        labels = [ln.strip() for ln in text.splitlines() if ln.strip()]
    opts = ServingOptions(
        max_batch_size=max_batch, dynamic_batching=dynamic_batching, max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=_int_list(preferred_batch), max_queue_size=max_queue_size, instances=instances,
        kind=kind or ("gpu" if plans else "cpu"), keep_versions=keep_versions, warmup=warmup,
    )
    if onnx_path:
        pub = publish_onnx(repository, name, onnx_path, opts, labels=labels)
    else:
        pub = _publish_plans(repository, name, plans, plan_records, opts, labels)
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


def _publish_plans(repository: str, name: str, plans: tuple[str, ...], records: tuple[str, ...],
                   opts: object, labels: list[str] | None) -> object:
    """Plans keyed by the compute capability their records name."""
    from toolkit.repository.publish import publish_plan, read_plan_record

    if records and len(records) != len(plans):
        raise RepositoryError(f"{len(plans)} --plan but {len(records)} --plan-record; give one record per plan "
                              "or none (then PLAN.json beside each plan is used)")
    by_cc: dict[str, str] = {}
    recs: dict[str, dict] = {}
    for i, plan in enumerate(plans):
        record = read_plan_record(records[i] if records else f"{plan}.json")
        cc = str(record.get("compute_capability") or f"plan{i}")
        if cc in by_cc:
            raise RepositoryError(f"{plan} and {by_cc[cc]} were both built for compute capability {cc}; "
                                  "give one plan per GPU kind")
        by_cc[cc], recs[cc] = plan, record
    return publish_plan(repository, name, by_cc, recs, opts, labels=labels)


@repo.command("list")
@click.option("--repository", default="model_repository", show_default=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True)
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
@click.option("--repository", default="model_repository", show_default=True, type=click.Path())
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
@click.option("--repository", default="model_repository", show_default=True, type=click.Path())
def prune_cmd(name: str, keep: int, repository: str) -> None:
    """Delete all but the newest --keep versions of NAME."""
    from toolkit.repository.versions import prune

    removed = prune(repository, name, keep)
    click.echo(f"pruned {name}: removed versions {removed or 'none'}")


def _attach_validate() -> None:
    from toolkit.cli.repo_validate import validate

    repo.add_command(validate, "validate")


_attach_validate()
