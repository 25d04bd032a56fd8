"""The versioned model repository: publish new versions atomically, never modify old ones.

The protocol (why: a polling Triton must never serve a version under a config it was not
published with, whatever moment a publish is killed at):

* Every live ``config.pbtxt`` pins the versions it was written for with ``version_policy:
  specific { versions: [...] }``, computed from the user's requested policy (latest N / all /
  specific). A version folder that no config names is invisible to Triton.
* Each version's ``manifest.json`` records the exact config it must be served with (with the
  requested policy), its sha256, and the sha256 of every file.
* A publish stages the version (and the new config and labels) on the repository's own
  filesystem: inside the model folder under a dot-name Triton ignores as a version, or, for a
  model that does not exist yet, beside the repository when that is the same filesystem. It
  parses and validates (one rule engine: :mod:`toolkit.repository.validate`) the exact config text it will
  make live, fsyncs, renames the version folder in (not yet named by any config, so not loaded),
  writes the labels under a content-addressed name, then atomically replaces ``config.pbtxt`` with
  the config naming the new version plus the older ones whose recorded config equals it.
* A version left by a killed publish that no config names is reported as unpublished and never
  reused; stale staging folders of dead writers are removed under the lock by the next publish.

A lock file beside the repository (opened without following symlinks, owned by the writer)
serializes writers.

Modules: :mod:`~toolkit.repository.storage` (the filesystem operations and the lock),
:mod:`~toolkit.repository.manifest` (records and policies), :mod:`~toolkit.repository.sources`
(reading the inputs), :mod:`~toolkit.repository.versions` (list, rollback, prune).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import toolkit
from contract.errors import RepositoryError, UsageError
from contract.fileio import sha256_of, sha256_text
from contract.spec import ModelSpec, TensorSpec
from toolkit.repository.config import (
    ONNX_PLATFORM,
    PLAN_PLATFORM,
    ServingOptions,
    build_config,
    build_ensemble_config,
    build_preprocess_config,
    config_to_text,
    parse_config,
)
from toolkit.repository.manifest import (
    CONFIG,
    LABELS_RE,
    MANIFEST,
    check_labels,
    compatible_versions,
    configs_agree,
    labels_filename,
    library_versions,
    live_labels,
    live_state,
    pinned_config,
    read_live_config,
    read_manifest,
    recorded_config,
    verify_version,
    with_label_file,
)
from toolkit.repository.remote import is_remote
from toolkit.repository.sources import (
    check_source,
    external_data_files,
    fixed_batch_of,
    read_plan_record,
    spec_from_onnx_graph,
)
from toolkit.repository.storage import (
    STEPS,
    clean_stale,
    commit_version,
    entry_names,
    fault,
    lstat,
    prepare_repository,
    repository_lock,
    stage_root,
    taken_numbers,
    version_numbers,
)
from toolkit.repository.validate import validate_model
from toolkit.repository.validate.manifest import named_versions

# Re-exported: callers outside the repository package still import these from here.
__all__ = [
    "CONFIG", "MANIFEST", "STEPS", "Candidate", "Published", "check_model_name", "configs_agree", "labels_filename",
    "live_labels",
    "named_versions", "publish_image_ensemble", "publish_locked", "publish_onnx", "publish_plan", "read_live_config",
    "read_manifest", "read_plan_record", "recorded_config", "repository_lock", "spec_from_onnx_graph",
    "verify_version", "version_numbers",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_model_name(name: str) -> str:
    """Model names become folder names: refuse separators, dot-names and control characters."""
    if not name or not _NAME_RE.match(name) or name in (".", "..") or ".." in name:
        raise UsageError(
            f"model name {name!r} is invalid; use letters, digits, '_', '-' and '.' "
            "(no '/', no '..', no control characters)"
        )
    return name


@dataclass(frozen=True)
class Candidate:
    """What a publish turns into a version: files (name in the version -> source), the requested
    config, the model's spec, the hash that says "same model" and provenance for the manifest."""

    name: str
    files: dict[str, Path]
    config_text: str
    spec: ModelSpec
    model_sha: str
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Published:
    """What a publish did: the version folder, or that the latest version already matched."""

    model: str
    version: int
    path: Path
    created: bool
    note: str = ""  # what tritonkit decided for the user (e.g. a fixed-batch graph published unbatched)


def publish_onnx(
    repository: str | os.PathLike[str],
    name: str,
    onnx_path: str | os.PathLike[str],
    options: ServingOptions | None = None,
    *,
    labels: list[str] | None = None,
    provenance: dict[str, Any] | None = None,
    skip_if_unchanged: bool = False,
) -> Published:
    """Publish an ONNX model as a new version of ``name`` (config from the graph, atomic).

    ``repository`` may be an ``s3://`` URL (:mod:`toolkit.repository.remote_publish`)."""
    if is_remote(repository):
        from toolkit.repository.remote_publish import LATEST, on_working_copy

        return on_working_copy(str(repository), {name: {LATEST} if skip_if_unchanged else set()},
                               lambda work: publish_onnx(work, name, onnx_path, options, labels=labels,
                                                         provenance=provenance, skip_if_unchanged=skip_if_unchanged))
    repository = Path(repository)
    check_model_name(name)
    options = options or ServingOptions()
    onnx_path = Path(onnx_path)
    check_source(onnx_path, "ONNX file", "run 'tritonkit export' first")
    options.validate()
    note = ""
    fixed = fixed_batch_of(onnx_path) if options.max_batch_size > 0 else None
    if fixed is not None:
        # Triton adds the batch dim itself; a graph fixed at batch N can only be served with full dims.
        options = replace(options, max_batch_size=0, dynamic_batching=False, preferred_batch_sizes=[])
        note = (f"the graph has a fixed batch of {fixed}: published with max_batch_size 0 (full dims, no dynamic "
                "batching); re-export without --static to batch on the server")
    spec = spec_from_onnx_graph(onnx_path, tuple(labels or ()), batched=options.max_batch_size > 0)
    check_labels(spec)
    if options.label_filename is None or not spec.labels:
        options = replace(options, label_filename=None)
    cfg = build_config(name, spec, ONNX_PLATFORM, options)
    config_text = config_to_text(cfg)
    files = {"model.onnx": onnx_path, **external_data_files(onnx_path)}
    model_sha = sha256_of(onnx_path)
    if len(files) > 1:
        model_sha = sha256_text("".join(f"{rel}:{sha256_of(p)}" for rel, p in sorted(files.items())))
    cand = Candidate(name, files, config_text, spec, model_sha, provenance or {})
    return replace(_publish(repository, cand, skip_if_unchanged), note=note)


def publish_plan(
    repository: str | os.PathLike[str],
    name: str,
    plans: dict[str, str | os.PathLike[str]],
    records: dict[str, dict[str, Any]],
    options: ServingOptions | None = None,
    *,
    labels: list[str] | None = None,
    provenance: dict[str, Any] | None = None,
    skip_if_unchanged: bool = False,
) -> Published:
    """Publish TensorRT plans as a new version (``tensorrt_plan``).

    ``plans`` maps a compute capability (``"8.6"``) to a plan file, ``records`` the same keys to
    their build records. One plan is ``model.plan``; several become ``model_<cc>.plan`` listed in
    ``cc_model_filenames``. ``max_batch_size`` may not exceed any plan's profile maximum.
    ``repository`` may be an ``s3://`` URL.
    """
    if is_remote(repository):
        from toolkit.repository.remote_publish import LATEST, on_working_copy

        return on_working_copy(str(repository), {name: {LATEST} if skip_if_unchanged else set()},
                               lambda work: publish_plan(work, name, plans, records, options, labels=labels,
                                                         provenance=provenance, skip_if_unchanged=skip_if_unchanged))
    check_model_name(name)
    options = options or ServingOptions(kind="gpu")
    options.validate()
    if not plans:
        raise UsageError("no plan given; build one with 'tritonkit build' and pass --plan")
    limit = min(int(r["max_batch_size"]) for r in records.values())
    if options.max_batch_size > limit:
        raise UsageError(
            f"--max-batch {options.max_batch_size} exceeds the plan's profile maximum {limit}; "
            f"use --max-batch {limit} or rebuild the plan with --max-batch {options.max_batch_size}"
        )
    first = next(iter(records.values()))
    spec = ModelSpec(
        inputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in first["inputs"]),
        outputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in first["outputs"]),
        labels=tuple(labels or first.get("labels", ())),
    )
    check_labels(spec)
    if not spec.labels:
        options = replace(options, label_filename=None)
    files: dict[str, Path] = {}
    cc_names: dict[str, str] = {}
    for cc, path in plans.items():
        p = Path(path)
        check_source(p, "plan file", "build it with 'tritonkit build'")
        want = records[cc].get("sha256")
        if want and want != sha256_of(p):
            raise RepositoryError(f"{p}: the plan's sha256 differs from its record's; the record belongs to "
                                  "another build. Pass the record written beside this plan")
        target = "model.plan" if len(plans) == 1 else f"model_{cc.replace('.', '_')}.plan"
        files[target] = p
        if len(plans) > 1:
            cc_names[cc] = target
    cfg = build_config(name, spec, PLAN_PLATFORM, options, cc_model_filenames=cc_names)
    prov = {"plan_records": records, **(provenance or {})}
    model_sha = sha256_text("".join(sha256_of(p) for p in files.values()))
    return _publish(Path(repository), Candidate(name, files, config_to_text(cfg), spec, model_sha, prov),
                    skip_if_unchanged)


def publish_image_ensemble(
    repository: str | os.PathLike[str],
    name: str,
    classifier: str,
    spec: ModelSpec,
    max_batch_size: int,
    *,
    skip_if_unchanged: bool = False,
) -> list[Published]:
    """Publish ``<classifier>_preprocess`` (python) and the ensemble ``<name>`` over ``classifier``.

    Clients then send raw UINT8 images of any size (``IMAGE``) or encoded PNG/JPEG bytes
    (``IMAGE_BYTES``) and get the classifier's outputs; the transform is the training one.
    ``repository`` may be an ``s3://`` URL.
    """
    if is_remote(repository):
        from toolkit.repository.remote_publish import LATEST, on_working_copy

        latest = {LATEST} if skip_if_unchanged else set()
        full = {f"{classifier}_preprocess": latest, name: latest}
        return on_working_copy(str(repository), full,
                               lambda work: publish_image_ensemble(work, name, classifier, spec, max_batch_size,
                                                                   skip_if_unchanged=skip_if_unchanged))
    check_model_name(name)
    pre_name = f"{classifier}_preprocess"
    check_model_name(pre_name)
    if len(spec.inputs) != 1 or len(spec.input.shape) != 3 or any(d <= 0 for d in spec.input.shape):
        raise UsageError(
            f"an image ensemble needs one fixed-size (C, H, W) input; {classifier} has "
            f"{[list(t.shape) for t in spec.inputs]}"
        )
    model_py = Path(__file__).resolve().parent.parent / "serve" / "preprocessing" / "model.py"
    pre_cfg = config_to_text(build_preprocess_config(pre_name, spec, max_batch_size))
    out = [_publish(Path(repository), Candidate(pre_name, {"model.py": model_py}, pre_cfg, replace(spec, labels=()),
                                                sha256_text(sha256_of(model_py) + pre_cfg)), skip_if_unchanged)]
    ens_cfg = config_to_text(build_ensemble_config(name, pre_name, classifier, spec, max_batch_size))
    out.append(_publish(Path(repository), Candidate(name, {}, ens_cfg, spec, sha256_text(ens_cfg)), skip_if_unchanged))
    return out


def _publish(repository: Path, cand: Candidate, skip_if_unchanged: bool) -> Published:
    prepare_repository(repository)
    with repository_lock(repository):
        return publish_locked(repository, cand, skip_if_unchanged)


def _refuse_invalid(staged_model: Path, name: str, repository: Path, version: int, elsewhere: set[int]) -> None:
    """Run the repository validator's rules on the staged model folder; refuse on any error."""
    problems = [p for p in validate_model(staged_model, repository=repository, name=name, present=elsewhere,
                                          checksums=True)
                if p.is_error]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RepositoryError(
            f"{repository / name}: refusing to publish version {version}, Triton would not load it: "
            f"{problems[0].line()}{more}; the repository is unchanged"
        )


def publish_locked(repository: Path, cand: Candidate, skip_if_unchanged: bool,
                   expected: dict[str, str] | None = None) -> Published:
    """Publish ``cand`` as the next version of its model; the caller holds :func:`repository_lock`.

    ``expected`` maps file names to the sha256 each copy must have (a rollback's manifest).
    """
    name, files, spec, model_sha, provenance = cand.name, cand.files, cand.spec, cand.model_sha, cand.provenance
    config_text = cand.config_text
    model_dir = repository / name
    clean_stale(repository, model_dir)
    fault("cleaned")
    config_text = with_label_file(config_text, spec, f"{name}: config to publish")
    requested = parse_config(config_text, f"{name}: config to publish")
    live, named = live_state(model_dir)
    if skip_if_unchanged and live is not None and named:
        try:
            latest = read_manifest(model_dir / str(named[-1]))
            same = (latest.get("model_sha256") == model_sha and latest.get("config_sha256") == sha256_text(config_text)
                    and configs_agree(live, requested) and not verify_version(model_dir / str(named[-1])))
        except RepositoryError:
            same = False
        if same:
            return Published(name, named[-1], model_dir / str(named[-1]), created=False)
    version = (taken_numbers(model_dir) or [0])[-1] + 1
    try:
        stage, beside = stage_root(repository, model_dir, name, version)
    except OSError as exc:
        raise RepositoryError(
            f"{repository}: cannot stage version {version} of {name} in {model_dir} ({exc.strerror}); "
            "the repository is unchanged. Fix permissions or free space and retry"
        ) from None
    new_model = not beside and not version_numbers(model_dir) and lstat(model_dir / CONFIG) is None
    try:
        manifest = _manifest(name, version, files, stage / "model" / str(version), config_text, spec, model_sha,
                             provenance, expected)
        versions = compatible_versions(model_dir, requested, version, named)
        label_file = _stage_config(stage / "model", name, manifest, pinned_config(requested, versions), spec)
        fault("staged")
        _refuse_invalid(stage / "model", name, repository, version, set(versions) - {version})
        fault("validated")
        commit_version(model_dir, stage, version, label_file, beside=beside, new_model=new_model)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EXDEV:
            hint = " (the staging folder and the repository are on different filesystems)"
        raise RepositoryError(
            f"{repository}: publishing {name} version {version} failed ({exc.strerror or exc}){hint}; "
            "the repository is unchanged. Free space or fix permissions and retry"
        ) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    remove_unused_labels(model_dir)
    fault("done")
    return Published(name, version, model_dir / str(version), created=True)


def _manifest(name: str, version: int, files: dict[str, Path], vdir: Path, config_text: str, spec: ModelSpec,
              model_sha: str, provenance: dict[str, Any], expected: dict[str, str] | None) -> dict[str, Any]:
    """Copy ``files`` into the staged version folder and return its manifest (every file's sha256)."""
    vdir.mkdir(parents=True)
    manifest_files = {}
    for target, src in files.items():
        (vdir / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, vdir / target)
        manifest_files[target] = sha256_of(vdir / target)
        if expected is not None and expected.get(target) != manifest_files[target]:
            raise RepositoryError(f"{src}: changed while it was copied (sha256 differs from its manifest); "
                                  "refusing to publish it; the repository is unchanged")
    return {
        "model": name,
        "version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": manifest_files,
        "model_sha256": model_sha,
        "config_sha256": sha256_text(config_text),
        "config": config_text,
        "labels": list(spec.labels),
        "spec": spec.to_dict(),
        "tritonkit": toolkit.__version__,
        "libraries": library_versions(),
        **provenance,
    }


def _stage_config(staged_model: Path, name: str, manifest: dict[str, Any], live_text: str,
                  spec: ModelSpec) -> str | None:
    """Write the manifest, the config to make live (parsed first) and the label file; the label file's name."""
    version = manifest["version"]
    (staged_model / str(version) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    parse_config(live_text, f"{name}: config to make live")
    (staged_model / CONFIG).write_text(live_text)
    labels_text = "".join(f"{label}\n" for label in spec.labels)
    label_file = labels_filename(spec.labels) if labels_text else None
    if label_file:
        (staged_model / label_file).write_text(labels_text)
    return label_file


def remove_unused_labels(model_dir: Path) -> None:
    """Content-addressed label files that neither the live config nor any present version's recorded config
    names. A polling Triton may still be loading a version under the config it read a moment ago: the labels
    that config names must outlive the switch, so they go only when their versions are pruned."""
    from toolkit.repository.validate.manifest import recorded_config_of

    try:
        cfg = read_live_config(model_dir)
    except RepositoryError:
        return
    if cfg is None:
        return
    used = {o.label_filename for o in cfg.output}
    for v in version_numbers(model_dir):
        recorded = recorded_config_of(model_dir / str(v))
        if recorded is None:
            return  # a version whose labels cannot be told: keep every label file
        used |= {o.label_filename for o in recorded.output}
    for n in entry_names(model_dir):
        if LABELS_RE.fullmatch(n) and n not in used:
            (model_dir / n).unlink(missing_ok=True)
