"""``tritonkit repo``: publish, list, roll back, prune and validate model repository versions.

:mod:`toolkit.repository.versions` loads Triton's protobuf, so it is imported inside the commands
(``tritonkit --help`` stays fast).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from contract.errors import RepositoryError, ServerError, UsageError
from toolkit.cli.options import IntList, force_option, json_option, repository_option
from toolkit.pipeline import Context, PublishStep, export_provenance, plans_by_capability, run_steps
from toolkit.repository.options import ServingOptions
from toolkit.repository.remote import is_remote
from toolkit.repository.sources import read_labels_file

if TYPE_CHECKING:  # publish loads Triton's protobuf, which `tritonkit --help` must not
    from toolkit.repository.publish import Published

SERVING = ServingOptions()  # the library's defaults, shown by --help


def published_line(pub: Published, created: str) -> str:
    """What a publish printed: ``created`` for a new version, else that the newest already holds it."""
    if pub.created:
        return created
    return (f"unchanged: version {pub.version} of {pub.model} already holds this (same files and config); "
            "nothing added (--force publishes a new version anyway)")


def size_text(size: int) -> str:
    """Bytes as a person reads them in a table: ``812 B``, ``95.3 KiB``, ``1.2 GiB``."""
    step = 0
    value = float(size)
    while value >= 1024 and step < 4:
        value, step = value / 1024, step + 1
    return f"{size} B" if step == 0 else f"{value:.1f} {('KiB', 'MiB', 'GiB', 'TiB')[step - 1]}"


def check_load_target(repository: Path) -> Path:
    """Before publishing with ``--load``: the run folder of a live server of THIS repository, with explicit
    model control. Why: loading on another repository's server reloads that repository's model."""
    from toolkit.serve.runner import server_status
    from toolkit.serve.state import live_servers, run_dir_for

    run_dir = run_dir_for(repository)
    status = server_status(run_dir)
    start = (f"start one with `tritonkit serve --repository {repository} --model-control explicit --detach`, "
             "or drop --load; nothing was published")
    served = Path(str(status.get("repository") or ""))
    if not status.get("running") or served.resolve() != repository.resolve():
        others = sorted({str(state.get("repository")) for _, state in live_servers()})
        elsewhere = f" (the running server serves {', '.join(others)}, not {repository})" if others else ""
        raise ServerError(f"repo add --load: no running server is recorded for {repository}{elsewhere}; {start}")
    if status.get("model_control") != "explicit":
        raise ServerError(f"repo add --load: the server of {repository} runs with model control "
                          f"{status.get('model_control')!r}; restart it with --model-control explicit (poll reloads "
                          "by itself); nothing was published")
    return run_dir


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
              help="Then load it on the detached `tritonkit serve --model-control explicit` server of this "
                   "repository (checked before anything is published).")
@force_option()
@json_option()
def add(name: str, repository: str, onnx_path: str | None, plans: tuple[str, ...], plan_records: tuple[str, ...],
        max_batch: int, dynamic_batching: bool, max_queue_delay_us: int, preferred_batch: list[int] | None,
        max_queue_size: int, instances: int, kind: str | None, keep_versions: int, warmup: bool,
        labels_file: str | None,
        load: bool, force: bool, as_json: bool) -> None:
    """Publish a NEW version of NAME (never modifies an existing one).

    Inputs, outputs, dtypes and dims come from the ONNX graph (--onnx) or the plan record (--plan),
    never from flags. A TensorRT plan's max batch may not exceed its profile's maximum. When the
    newest version already holds the same files and config, nothing is added (--force adds it anyway).
    """
    if bool(onnx_path) == bool(plans):
        raise RepositoryError("repo add: give either --onnx FILE or --plan FILE (with its record)")
    remote = is_remote(repository)
    if remote:
        from toolkit.repository.s3 import require_s3

        require_s3(repository)
        if load:
            raise UsageError("repo add --load: a server polling an s3:// repository loads the new version by itself "
                             "(serve it with --model-control poll); drop --load")
    run_dir = check_load_target(Path(repository)) if load else None
    labels = read_labels_file(labels_file) if labels_file else None
    opts = ServingOptions(
        max_batch_size=max_batch, dynamic_batching=dynamic_batching, max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=preferred_batch or [], max_queue_size=max_queue_size, instances=instances,
        kind=kind or ("gpu" if plans else "cpu"), keep_versions=keep_versions, warmup=warmup,
    )
    ctx = Context(repository=Path(repository), name=name, options=opts, labels=labels,
                  onnx=Path(onnx_path) if onnx_path else None,
                  provenance=export_provenance(Path(onnx_path)) if onnx_path else {})
    if plans:
        ctx.plans, ctx.records = plans_by_capability(plans, plan_records)
    if remote:  # the local publish, with all its checks, on a working copy; then the object-storage protocol
        from toolkit.repository.remote_publish import LATEST, on_working_copy

        def publish_into(work: Path) -> Published:
            ctx.repository = work
            return run_steps([PublishStep(label="", skip_if_unchanged=not force)], ctx).published[-1]

        pub = on_working_copy(repository, {name: set() if force else {LATEST}}, publish_into)
    else:
        pub = run_steps([PublishStep(label="", skip_if_unchanged=not force)], ctx).published[-1]
    loaded = None
    if run_dir is not None:
        from toolkit.serve.runner import load_detached

        try:
            loaded = load_detached(name, run_dir)
        except ServerError as exc:
            raise ServerError(f"{exc} (version {pub.version} of {name} is in {repository}: the server did not "
                              f"load it; fix the cause and reload, or `tritonkit repo rollback {name} --to N`)"
                              ) from None
    if as_json:
        click.echo(json.dumps({"model": pub.model, "version": pub.version, "path": str(pub.path),
                               "created": pub.created, "note": pub.note, "loaded": loaded}))
    else:
        click.echo(published_line(pub, f"published {pub.model} version {pub.version} -> {pub.path}"))
        if pub.note:
            click.echo(f"note: {pub.note}")
        if loaded is not None:
            ready = sorted(int(m["version"]) for m in loaded if m["state"] == "READY")
            click.echo(f"loaded {name}: ready versions {ready}")


@repo.command("list")
@repository_option()
@json_option()
def list_cmd(repository: str, as_json: bool) -> None:
    """Models and versions: platform, size, max batch, metrics, created, status.

    Platform and max batch are each version's own recorded config. Status says whether the live
    config serves a version (and which one requests without a version get), or that it is
    unpublished (a publish was killed before its config went live), and which versions the server
    recorded for this repository has loaded; symlinked folders are flagged and never followed.
    --json gives sizes in bytes.
    """
    from toolkit.repository.versions import list_models

    rows = list_models(repository)
    loaded = {} if is_remote(repository) else loaded_versions(Path(repository))
    for r in rows:
        r["loaded_on"] = loaded.get((r["model"], r["version"]))
        if r["loaded_on"]:
            r["status"] += f"; loaded on {r['loaded_on']}"
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
            f"{clean(r['model']):<24} {str(r['version'] or '-'):>4} {clean(r['platform']):<18} "
            f"{size_text(r['size_bytes']):>10} "
            f"{str(r['max_batch_size']):>8}  {acc_text:>8}  {clean(r['created'] or ''):<25}  {clean(r['status'])}"
        )


def loaded_versions(repository: Path) -> dict[tuple[str, int], str]:
    """(model, version) -> URL, for what the live server recorded for this repository has READY; {} when none
    runs. Why: the live config says what may be served, the server what is."""
    from toolkit.serve.runner import server_status
    from toolkit.serve.state import run_dir_for

    try:
        status = server_status(run_dir_for(repository))
    except ServerError:
        return {}
    url = str(status.get("grpc_url") or status.get("http_url") or "")
    return {(str(m.get("name")), int(m["version"])): url for m in status.get("models", [])
            if m.get("state") == "READY" and str(m.get("version", "")).isdigit()}


@repo.command("rollback")
@click.argument("name")
@click.option("--to", "to", required=True, type=int, help="Version to serve again.")
@repository_option()
@force_option()
def rollback_cmd(name: str, to: int, repository: str, force: bool) -> None:
    """Publish a copy of version --to as the newest version (history is kept).

    The old version's files, manifest and recorded config are checked first; the new live config
    serves the copy with that version's own recorded config. When the newest version already holds
    it, nothing is added (--force adds a copy anyway).
    """
    from toolkit.repository.versions import rollback

    pub = rollback(repository, name, to, force=force)
    click.echo(published_line(pub, f"rolled back {name}: version {pub.version} is a copy of version {to}"))


@repo.command("prune")
@click.argument("name")
@click.option("--keep", required=True, type=int)
@repository_option()
def prune_cmd(name: str, keep: int, repository: str) -> None:
    """Delete all but the newest --keep versions of NAME."""
    from toolkit.repository.versions import prune

    removed = prune(repository, name, keep)
    click.echo(f"pruned {name}: removed versions {removed or 'none'}")


def _transfer(verb: str, local: str, url: str, force: bool, as_json: bool) -> None:
    """``repo push`` / ``repo pull``: the same checks, call and report in both directions."""
    from toolkit.repository import objectsync
    from toolkit.repository.s3 import require_s3

    pushing = verb == "pushed"
    require_s3(url)
    if is_remote(local):
        other = "'tritonkit repo pull URL LOCAL'" if pushing else "'tritonkit repo push LOCAL URL'"
        raise UsageError(f"repo {'push' if pushing else 'pull'}: LOCAL {local!r} must be a folder; to copy "
                         f"{'from' if pushing else 'into'} a bucket use {other}")
    out = objectsync.push(local, url, force=force) if pushing else objectsync.pull(url, local, force=force)
    if as_json:
        click.echo(json.dumps(out.to_dict()))
        return
    src, dst = (local, url) if pushing else (url, local)
    moved = out.uploaded if pushing else out.downloaded
    click.echo(f"{verb} {src} -> {dst}: {moved} files ({size_text(out.bytes)}) transferred, {out.skipped} already "
               f"there, {out.deleted} deleted; versions copied: {', '.join(out.versions) or 'none'}")
    for note in out.notes[:-1]:
        click.echo(f"note: {note}")


@repo.command("push")
@click.argument("local", type=click.Path(path_type=str))
@click.argument("url")
@force_option("Replace versions the bucket holds with other contents, and stop serving those LOCAL lacks.")
@json_option()
def push_cmd(local: str, url: str, force: bool, as_json: bool) -> None:
    """Copy the published versions of the folder LOCAL to the s3:// repository URL (changed files only).

    Each version's objects are verified against its manifest before the config naming them is written
    (last), so a polling Triton never sees a half-copied version. A version the bucket holds with other
    contents, or published versions the bucket has and LOCAL lacks, are refused; --force replaces them.
    Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or AWS_PROFILE.
    """
    _transfer("pushed", local, url, force, as_json)


@repo.command("pull")
@click.argument("url")
@click.argument("local", type=click.Path(path_type=str))
@force_option("Replace local versions with other contents, and stop serving those the bucket lacks.")
@json_option()
def pull_cmd(url: str, local: str, force: bool, as_json: bool) -> None:
    """Copy the published versions of the s3:// repository URL into the folder LOCAL (changed files only).

    Every downloaded file is checked against its version's manifest (a mismatch is refused and leaves
    nothing behind); each version is renamed in whole and the config is written last. A local version
    with other contents, or published local versions the bucket lacks, are refused; --force replaces them.
    """
    _transfer("pulled", local, url, force, as_json)


def _attach_validate() -> None:
    from toolkit.cli.repo_validate import validate

    repo.add_command(validate, "validate")


_attach_validate()
