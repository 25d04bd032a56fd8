"""Versions after publishing: list them, roll back to one, prune old ones.

Every change goes through the same lock and the same rule as a publish: a live config only ever
names versions whose recorded config equals it, and it is replaced last, atomically.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from contract.errors import RepositoryError, UsageError
from contract.fileio import fsync_path
from contract.spec import ModelSpec
from toolkit.repository.config import parse_config
from toolkit.repository.manifest import (
    MANIFEST,
    check_labels,
    pinned_config,
    read_live_config,
    read_manifest,
    recorded_config,
    safe_relative,
    verify_version,
    version_status,
)
from toolkit.repository.publish import Candidate, Published, check_model_name, publish_locked, remove_unused_labels
from toolkit.repository.remote import is_remote
from toolkit.repository.storage import (
    CONFIG,
    FILE_RE,
    MAX_CONFIG_BYTES,
    STAGING_PREFIX,
    VERSION_RE,
    clean_stale,
    entry_names,
    is_real_dir,
    lstat,
    read_text,
    remove_version,
    replace_config,
    repository_lock,
    tree_size,
    version_numbers,
)
from toolkit.repository.validate import validate_model
from toolkit.repository.validate.manifest import named_versions


def list_models(repository: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Models and versions with platform, size, max batch, metrics, creation time and status.

    Nothing is followed out of the repository: a symlinked model or version folder is listed with
    its status and never walked; manifests and configs are read only when they are regular files.
    An ``s3://`` URL is listed from the bucket (:func:`toolkit.repository.remote_publish.list_remote`).
    """
    if is_remote(repository):
        from toolkit.repository.remote_publish import list_remote

        return list_remote(str(repository))
    repository = Path(repository)
    if not repository.is_dir():
        raise RepositoryError(f"{repository}: repository not found; build one with 'make repo' or give --repository")
    rows: list[dict[str, Any]] = []

    def row(model: str, version: int | None, status: str, **kw: Any) -> None:
        rows.append({"model": model, "version": version, "platform": kw.get("platform", "?"),
                     "size_bytes": kw.get("size", 0), "max_batch_size": kw.get("max_batch"),
                     "metrics": kw.get("metrics", {}), "created": kw.get("created"), "status": status})

    for name in entry_names(repository):
        model_dir = repository / name
        st = lstat(model_dir)
        if name.startswith(".") or st is None:
            continue
        if stat.S_ISLNK(st.st_mode):
            row(name, None, "model folder is a symlink: not followed; copy the model into the repository")
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        platform_name, max_batch, named, config_problem = "?", None, [], ""
        try:
            cfg = read_live_config(model_dir)
            if cfg is not None:
                platform_name, max_batch = cfg.platform or cfg.backend, cfg.max_batch_size
                named = named_versions(cfg, version_numbers(model_dir))
        except RepositoryError as exc:
            platform_name, config_problem = "unusable config", str(exc).split(": ", 1)[-1]
        for n in entry_names(model_dir):
            if not VERSION_RE.fullmatch(n):
                continue
            vdir = model_dir / n
            vst = lstat(vdir)
            if vst is None or not stat.S_ISDIR(vst.st_mode):
                kind = "a symlink" if vst is not None and stat.S_ISLNK(vst.st_mode) else "not a folder"
                row(name, int(n), f"version entry is {kind}: not followed; replace it with a real folder or "
                    "remove it", platform=platform_name, max_batch=max_batch)
                continue
            manifest: dict[str, Any] = {}
            status = (f"not served: the live config is unusable ({config_problem})" if config_problem
                      else version_status(model_dir, int(n), named))
            if named and int(n) == max(named):
                status += " (default version)"
            own_platform, own_batch = platform_name, max_batch
            try:
                manifest = read_manifest(vdir)
                own = recorded_config(vdir, manifest)  # this version's own config, not the live one
                own_platform, own_batch = own.platform or own.backend, own.max_batch_size
            except RepositoryError as exc:
                status += f"; {str(exc).split(': ', 1)[-1]}"
            row(name, int(n), status, platform=own_platform, max_batch=own_batch, size=tree_size(vdir),
                metrics=_metrics(manifest), created=manifest.get("created"))
    return rows


def _metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's metrics a manifest records (``make repo``), else those of its export record (``repo add``)."""
    for source in (manifest, manifest.get("export")):
        metrics = source.get("checkpoint_metrics") if isinstance(source, dict) else None
        if isinstance(metrics, dict) and metrics:
            return metrics
    return {}


def require_model(model_dir: Path) -> None:
    """A model folder (real, not a symlink) that ``prune``/``rollback`` can act on; one error line otherwise."""
    if not is_real_dir(model_dir):
        have = [n for n in entry_names(model_dir.parent) if not n.startswith(".") and is_real_dir(model_dir.parent / n)]
        raise RepositoryError(f"{model_dir}: no such model folder (models here: {', '.join(have) or 'none'}); "
                              f"see 'tritonkit repo list --repository {model_dir.parent}'")


def rollback(repository: str | os.PathLike[str], name: str, to: int, *, force: bool = False) -> Published:
    """Serve an older version again by publishing a copy of it as a new version (history kept).

    When the newest served version already holds the same files and config (``to`` is the newest,
    or a copy of it), nothing is added (``Published.created`` is False) unless ``force``.

    Under the lock: the old version's manifest (a regular file), its config checksum, the config
    itself (parsed and validated like any publish) and every file's sha256 are checked; the copy
    is checked again against the manifest; the new live config pins the copy with the old
    version's own recorded config. On an ``s3://`` URL the same runs on a working copy holding the
    source version and the newest one, and the copy is published with the object-storage protocol.
    """
    check_model_name(name)
    if is_remote(repository):
        from toolkit.repository.remote_publish import LATEST, on_working_copy

        return on_working_copy(str(repository), {name: {to} if force else {to, LATEST}},
                               lambda work: rollback(work, name, to, force=force))
    repository = Path(repository)
    src = repository / name / str(to)
    if not repository.is_dir():
        raise RepositoryError(f"{repository}: repository not found; give --repository")
    require_model(repository / name)
    with repository_lock(repository):
        have = version_numbers(repository / name)
        if to not in have:
            what = " (it is a symlink, which is never followed)" if os.path.islink(src) else ""
            raise RepositoryError(f"{name}: no version {to} to roll back to{what}; versions present: {have}")
        manifest = read_manifest(src)
        try:
            listed = {str(k): str(v) for k, v in dict(manifest["files"]).items()}
            config_text = str(manifest["config"])
            spec = ModelSpec.from_dict(manifest["spec"], where=str(src / MANIFEST))
            model_sha = str(manifest["model_sha256"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RepositoryError(f"{src / MANIFEST}: incomplete manifest (missing or malformed {exc}); "
                                  "this version cannot be rolled back to") from None
        bad = [rel for rel in listed if not safe_relative(rel)]
        if bad:
            raise RepositoryError(f"{src / MANIFEST}: lists file names outside the version folder {bad[:3]}; "
                                  "refusing to roll back to it")
        recorded_config(src, manifest)  # config_sha256 checked, config parsed
        changed = [c for c in verify_version(src) if not c.endswith("(not in the manifest)")]
        if changed:
            raise RepositoryError(f"{src}: files differ from the manifest ({', '.join(changed[:3])}); "
                                  "refusing to roll back to a modified version")
        check_labels(spec)
        prov = {k: v for k, v in manifest.items() if k.startswith("checkpoint") or k in ("parity", "export")}
        prov["rolled_back_from"] = to
        files = {rel: src / rel for rel in listed}
        return publish_locked(repository, Candidate(name, files, config_text, spec, model_sha, prov), not force,
                              expected=listed)


def prune(repository: str | os.PathLike[str], name: str, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` published versions.

    The live config is first rewritten (atomically, validated) to stop naming the doomed versions,
    then each is renamed to a trash name inside the model folder (same filesystem, a name Triton
    ignores) and deleted. Unpublished leftovers of killed publishes are not counted and not touched.
    """
    if keep < 1:
        raise UsageError(f"--keep {keep}: keep at least 1 version")
    check_model_name(name)
    if is_remote(repository):  # the config switched first, the objects deleted after (remote_publish)
        from toolkit.repository.remote_publish import on_working_copy

        return on_working_copy(str(repository), {}, lambda work: prune(work, name, keep))
    repository = Path(repository)
    model_dir = repository / name
    require_model(model_dir)
    with repository_lock(repository):
        clean_stale(repository, model_dir)
        live = read_live_config(model_dir)
        versions = version_numbers(model_dir)
        named = named_versions(live, versions)
        published = [v for v in versions if not named or v <= max(named)] if live is not None else versions
        doomed = published[:-keep]
        still = [v for v in named if v not in doomed]
        if live is not None and still != named:
            text = pinned_config(live, still)
            _validate_config_only(repository, model_dir, text, set(still))
            try:
                replace_config(model_dir, text)
            except OSError as exc:
                raise RepositoryError(f"{model_dir / CONFIG}: cannot rewrite the config to drop versions {doomed} "
                                      f"({exc.strerror}); nothing was removed. Fix permissions and retry") from None
        removed: list[int] = []
        for v in doomed:
            try:
                remove_version(model_dir, v)
            except OSError as exc:
                raise RepositoryError(
                    f"{model_dir / str(v)}: pruning stopped ({exc.strerror}) after removing versions "
                    f"{removed or 'none'}; fix permissions on {model_dir} and run it again") from None
            removed.append(v)
        if doomed:
            remove_unused_labels(model_dir)  # the labels only pruned versions named
            fsync_path(model_dir)
    return doomed


def _validate_config_only(repository: Path, model_dir: Path, text: str, present: set[int]) -> None:
    """Parse and validate a config about to replace the live one when no version changes (prune):
    staged with copies of the label files it names, the named versions taken as present."""
    name = model_dir.name
    cfg = parse_config(text, f"{model_dir / CONFIG} (new)")
    stage = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}0-", dir=model_dir))
    try:
        (stage / "model").mkdir()
        (stage / "model" / CONFIG).write_text(text)
        for label_file in {o.label_filename for o in cfg.output if o.label_filename}:
            if FILE_RE.fullmatch(label_file) and lstat(model_dir / label_file) is not None:
                (stage / "model" / label_file).write_text(
                    read_text(model_dir / label_file, "label file", MAX_CONFIG_BYTES * 16))
        errors = [p for p in validate_model(stage / "model", repository=repository, name=name, present=present,
                                            checksums=False) if p.is_error]
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if errors:
        raise RepositoryError(f"{model_dir}: refusing to write a config Triton would not load: {errors[0].line()}; "
                              "the repository is unchanged")


