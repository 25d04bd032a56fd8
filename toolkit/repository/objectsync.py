"""``repo push LOCAL URL`` and ``repo pull URL LOCAL``: copy published versions between a folder and a bucket.

Only what differs moves: a version whose manifest is the same on both sides and whose files match it
(S3's stored sha256 remotely, the bytes locally) is skipped. Every transferred file is checked against
its version's manifest; a mismatch is refused and leaves nothing half-made (a pulled version is staged
under a name Triton ignores and renamed in whole; a pushed one is never named by a config until it is
verified). Each side's config is written last, with the publish protocols
(:mod:`toolkit.repository.remote_publish`, :mod:`toolkit.repository.publish`).

Never overwriting someone's work silently: a version that exists on both sides with different
manifests, or versions the destination serves and the source lacks (its config would stop serving
them), are refused with what exists and ``--force`` to replace. Older versions the destination keeps
as unserved history stay where they are.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from contract.errors import RepositoryError
from contract.fileio import atomic_write_bytes, fsync_path
from toolkit.repository.remote_publish import (
    MANIFEST,
    ModelPlan,
    Transfer,
    apply_plan,
    fetch_version,
    named_in,
    remote_config,
    sweep_held,
)
from toolkit.repository.s3 import S3Storage, storage_for
from toolkit.repository.storage import (
    CONFIG,
    FILE_RE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    VERSION_RE,
    LocalStorage,
    fsync_tree,
    lstat,
    prepare_repository,
    remove_version,
    repository_lock,
    stage_root,
    version_numbers,
)


def _published(named: list[int], versions: list[int]) -> list[int]:
    """Versions at or below the newest named one (above it: leftovers of killed writers, never copied)."""
    return [v for v in versions if named and v <= max(named)]


def _refuse(conflicts: list[str], how: str) -> None:
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise RepositoryError(f"{conflicts[0]}{more}; nothing was copied. {how}")


def push(local: str | os.PathLike[str], url: str, *, force: bool = False) -> Transfer:
    """Copy LOCAL's published versions, labels and configs to the bucket (changed files only)."""
    local = Path(local)
    storage = storage_for(url)
    if not local.is_dir():
        raise RepositoryError(f"{local}: no such repository folder; pass the folder 'repo add' published into")
    started = time.monotonic()
    out = Transfer()
    with repository_lock(local), storage.lease() as lease:
        sweep_held(storage, lease, out)
        plans: list[ModelPlan] = []
        conflicts: list[str] = []
        remote_models = set(storage.model_names())
        for model in LocalStorage(local).model_names():
            mdir = local / model
            if lstat(mdir / CONFIG) is None:
                out.notes.append(f"{model}: no config.pbtxt, not pushed")
                continue
            text = (mdir / CONFIG).read_text()
            versions = version_numbers(mdir)
            published = _published(named_in(text, versions), versions)
            if not published:
                out.notes.append(f"{model}: its config names no version, not pushed")
                continue
            from toolkit.repository.manifest import verify_version

            for v in published:
                bad = verify_version(mdir / str(v))
                if bad:
                    raise RepositoryError(f"{mdir / str(v)}: differs from its manifest ({', '.join(bad[:3])}); "
                                          "refusing to push a modified version; nothing was copied")
            plan = ModelPlan(model, versions={v: mdir / str(v) for v in published})
            if model in remote_models:
                rtext = remote_config(storage, model)
                rversions = storage.version_numbers(model)
                rpublished = _published(named_in(rtext, rversions), rversions)
                for v in sorted(set(rversions) & set(published)):
                    same = _remote_manifest(storage, model, v) == (mdir / str(v) / MANIFEST).read_bytes()
                    if same:
                        continue
                    if v in rpublished and not force:
                        conflicts.append(f"{storage.url}/{model}/{v}: holds another version {v} than {mdir / str(v)} "
                                         "(different manifest)")
                    plan.withdraw.append(v)  # a killed writer's leftover, or replaced with --force
                lacking = sorted(set(named_in(rtext, rversions)) - set(published))
                if lacking and not force:
                    conflicts.append(f"{storage.url}/{model}: serves versions {lacking} that {local} lacks "
                                     "(pushing its config would stop serving them)")
                kept = sorted(set(rpublished) - set(published) - set(lacking))
                if kept:
                    out.notes.append(f"{model}: versions {kept} stay in the bucket, not served (history)")
                if rtext != text:
                    plan.config = text
            else:
                plan.config = text
            plan.labels = [mdir / n for n in sorted(os.listdir(mdir)) if n.startswith("labels_")
                           and (mdir / n).is_file()]
            plans.append(plan)
        _refuse(conflicts, f"Pull first ('tritonkit repo pull {storage.url} {local}'), or replace them with "
                           "'repo push --force'")
        for plan in plans:
            apply_plan(storage, plan, lease, out)
    out.notes.append(f"{time.monotonic() - started:.2f} s")
    return out


def _remote_manifest(storage: S3Storage, model: str, version: int) -> bytes | None:
    if storage.exists(f"{model}/{version}/{MANIFEST}") is None:
        return None
    return storage.get_bytes(f"{model}/{version}/{MANIFEST}", "manifest", MAX_MANIFEST_BYTES)


def pull(url: str, local: str | os.PathLike[str], *, force: bool = False) -> Transfer:
    """Copy the bucket's published versions, labels and configs into LOCAL (changed files only)."""
    from toolkit.repository.manifest import verify_version
    from toolkit.repository.remote_publish import verify_remote_version

    local = Path(local)
    storage = storage_for(url)
    storage.check_bucket()
    started = time.monotonic()
    out = Transfer()
    prepare_repository(local)
    with repository_lock(local):
        work: list[tuple[str, str, dict[int, dict[str, Any]], list[str]]] = []
        conflicts: list[str] = []
        for model in storage.model_names():
            if not FILE_RE.fullmatch(model):
                out.notes.append(f"{model[:80]!r}: not a model folder name tritonkit writes, not pulled")
                continue
            text = remote_config(storage, model)
            if text is None:
                out.notes.append(f"{model}: no config.pbtxt in the bucket, not pulled")
                continue
            listing = {o.key for o in storage.list(model)}
            rversions = sorted({int(k.split("/")[1]) for k in listing if VERSION_RE.fullmatch(k.split("/")[1])})
            named = named_in(text, rversions)
            if not named:
                out.notes.append(f"{model}: its config names no version yet (a publish in progress or killed), "
                                 "not pulled")
                continue
            fetch: dict[int, dict[str, Any]] = {}
            mdir = local / model
            lversions = version_numbers(mdir) if lstat(mdir) is not None else []
            for v in _published(named, rversions):
                manifest = _remote_manifest(storage, model, v)
                problems = verify_remote_version(storage, model, v, listing=listing) if manifest else ["no manifest"]
                if problems:
                    if v in named:
                        raise RepositoryError(f"{storage.url}/{model}/{v}: the live config names it but it differs "
                                              f"from its manifest ({', '.join(problems[:3])}); nothing was copied. "
                                              "Republish or roll back that model in the bucket")
                    out.notes.append(f"{model}/{v}: not served and incomplete in the bucket, not pulled")
                    continue
                if v in lversions:
                    mine = mdir / str(v) / MANIFEST
                    if lstat(mine) is not None and mine.read_bytes() == manifest and not verify_version(mdir / str(v)):
                        out.skipped += len(json.loads(manifest or b"{}").get("files", {})) + 1
                        continue
                    if not force:
                        conflicts.append(f"{mdir / str(v)}: holds another version {v} than {storage.url}/{model}/{v} "
                                         "(different manifest or modified files)")
                fetch[v] = {"manifest": manifest, "files": json.loads(manifest or b"{}").get("files", {})}
            lconfig = (mdir / CONFIG).read_text() if lstat(mdir / CONFIG) is not None else None
            lnamed = named_in(lconfig, lversions)
            lacking = sorted(set(lnamed) - set(_published(named, rversions)))
            if lacking and not force:
                conflicts.append(f"{mdir}: serves versions {lacking} that {storage.url} lacks (pulling its "
                                 "config would stop serving them)")
            labels = sorted(k.split("/")[1] for k in listing if k.count("/") == 1 and k.split("/")[1].startswith(
                "labels_"))
            work.append((model, text, fetch, labels))
        _refuse(conflicts, f"Push first ('tritonkit repo push {local} {storage.url}'), or replace them with "
                           "'repo pull --force'")
        for model, text, fetch, labels in work:
            _pull_model(storage, local, model, text, fetch, labels, out)
    out.notes.append(f"{time.monotonic() - started:.2f} s")
    return out


def _pull_model(storage: S3Storage, local: Path, model: str, text: str, fetch: dict[int, dict[str, Any]],
                labels: list[str], out: Transfer) -> None:
    """Stage every version to fetch (checked), rename each in whole, labels, config last."""
    mdir = local / model
    new_model = lstat(mdir) is None
    stage, beside = stage_root(local, mdir, model, max(fetch, default=0))
    try:
        staged_model = stage / "model"
        for v, info in sorted(fetch.items()):
            vdir = staged_model / str(v)
            fetch_version(storage, model, v, vdir, {str(k): str(s) for k, s in info["files"].items()}, out)
            vdir.mkdir(parents=True, exist_ok=True)  # an ensemble's version holds its manifest alone
            (vdir / MANIFEST).write_bytes(info["manifest"])
            out.downloaded += 1
            out.bytes += len(info["manifest"])
            out.versions.append(f"{model}/{v}")
        for name in labels:
            data = storage.get_bytes(f"{model}/{name}", "label file", MAX_CONFIG_BYTES * 16)
            (staged_model / name).parent.mkdir(parents=True, exist_ok=True)
            (staged_model / name).write_bytes(data)
        staged_model.mkdir(parents=True, exist_ok=True)
        (staged_model / CONFIG).write_text(text)
        fsync_tree(stage)
        if beside and new_model:  # the whole model appears in one rename
            os.rename(staged_model, mdir)
            fsync_path(mdir.parent)
            out.downloaded += 1 + len(labels)
            return
        from toolkit.repository.config import parse_config
        from toolkit.repository.manifest import pinned_config

        lconfig = (mdir / CONFIG).read_text() if lstat(mdir / CONFIG) is not None else None
        replaced = [v for v in fetch if (mdir / str(v)).exists()]
        if replaced and lconfig is not None:  # --force: stop naming them before they are swapped
            still = [v for v in named_in(lconfig, version_numbers(mdir)) if v not in replaced]
            atomic_write_bytes(mdir / CONFIG, pinned_config(parse_config(lconfig, str(mdir / CONFIG)), still).encode())
        for v in replaced:
            remove_version(mdir, v)
        for name in labels:
            if not (mdir / name).exists():
                os.replace(staged_model / name, mdir / name)
                out.downloaded += 1
        for v in sorted(fetch):
            os.rename(staged_model / str(v), mdir / str(v))
        fsync_path(mdir)
        if lconfig != text:
            atomic_write_bytes(mdir / CONFIG, text.encode())
            out.downloaded += 1
    finally:
        shutil.rmtree(stage, ignore_errors=True)
