"""Offline linter for any Triton model repository.

Finds, before a server does, what would make a model fail to load or misbehave: folder and
version rules, config.pbtxt against Triton's own ``ModelConfig`` schema, names, dims and dtypes
against the ONNX graph or the TensorRT plan record, batching limits, labels, ensemble wiring,
warm-up, paths that escape the model folder, and a plan's TensorRT version against a target
Triton release. It never raises on what it reads: every finding, garbage included, is a
:class:`Problem`.

    problems = validate_repository("model_repository", target_triton="24.09")
    for p in problems: print(p.line())   # model/file: field: what is wrong; how to fix
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toolkit.repository.validate import fs
from toolkit.repository.validate.config import VERSION_RE, Entry, Index, load_entry
from toolkit.repository.validate.ensemble import check_ensemble
from toolkit.repository.validate.layout import ModelFile, check_names, check_versions, model_files, model_kind
from toolkit.repository.validate.manifest import check_manifests, named_versions, recorded_config_of
from toolkit.repository.validate.problem import ERROR, NOTE, WARNING, Context, Problem
from toolkit.repository.validate.scheduling import check_scheduling
from toolkit.repository.validate.tensors import (
    check_against,
    check_instance_groups,
    check_io_config,
    check_labels,
    check_plan,
    check_warmup,
)

__all__ = ["Problem", "ERROR", "WARNING", "NOTE", "validate_repository", "validate_model", "summary"]


def _target_problem(target: str | None) -> Problem | None:
    if target is None:
        return None
    from toolkit.repository.releases import get_release, known_releases

    try:
        get_release(target)
    except Exception:  # noqa: BLE001 - UsageError; reported as a problem, never raised
        return Problem(ERROR, "", "", "target_triton", f"unknown Triton release {target!r}",
                       f"use one of {', '.join(known_releases())}")
    return None


def _check_entry(entry: Entry, index: Index, target: str | None, present: set[int] | None = None,
                 checksums: bool = True) -> list[Problem]:
    ctx = Context(entry.name, list(entry.problems))
    try:
        _run_checks(ctx, entry, index, target, present or set(), checksums)
    except Exception as exc:  # noqa: BLE001 - last resort: a linter bug must not hide the other findings
        ctx.error("", "-", f"the validator failed on this model ({exc.__class__.__name__}: {str(exc)[:160]})",
                  "report this as a tritonkit bug, with the model folder")
    return _dedupe(ctx.problems)


def _run_checks(ctx: Context, entry: Entry, index: Index, target: str | None, present: set[int],
                checksums: bool) -> None:
    cfg = entry.config
    base_real = os.path.realpath(entry.path)
    check_names(ctx, entry, cfg)
    if cfg is None:
        check_manifests(ctx, None, check_versions(ctx, entry, None, base_real), checksums=checksums)
        return
    kind = model_kind(ctx, cfg, entry.path)
    versions = check_versions(ctx, entry, cfg, base_real, present)
    check_manifests(ctx, cfg, versions, checksums=checksums)
    check_scheduling(ctx, cfg, kind, entry.path)
    check_io_config(ctx, cfg, kind)
    check_instance_groups(ctx, cfg, kind)
    check_labels(ctx, cfg, entry.path, base_real)
    check_warmup(ctx, cfg, entry.path, base_real, kind)
    if kind == "ensemble" or cfg.HasField("ensemble_scheduling"):
        check_ensemble(ctx, entry, cfg, index)
    loaded = set(named_versions(cfg, [v for v, _ in versions]))
    for mf in model_files(ctx, cfg, kind, versions, base_real):
        if kind == "tensorrt_plan":
            check_plan(ctx, cfg, mf, entry.path, target)
        if mf.artifact is None or cfg.max_batch_size < 0:
            continue
        if mf.version in loaded:
            check_against(ctx, cfg, mf.artifact)
        else:
            _check_unloaded(ctx, cfg, mf)


def _check_unloaded(ctx: Context, cfg: Any, mf: ModelFile) -> None:
    """A version the version_policy does not load is judged by the config it was published with.

    Why: after a shape change, the older version no longer matches the live config, yet Triton never
    loads it under ``latest``/``specific``; an error there would call a repository Triton accepts broken.
    """
    scratch = Context(ctx.name, [])
    recorded = recorded_config_of(mf.path.parent)
    check_against(scratch, recorded if recorded is not None else cfg, mf.artifact)
    if not any(p.is_error for p in scratch.problems):
        if recorded is not None and (recorded.max_batch_size != cfg.max_batch_size or _io(recorded) != _io(cfg)):
            ctx.note(str(mf.version), "version_policy", f"version {mf.version} is not loaded by version_policy and "
                     "was published with another config", f"tritonkit repo rollback {ctx.name} --to {mf.version} "
                     "restores it with its own config")
        return
    first = next(p for p in scratch.problems if p.is_error)
    if recorded is not None:
        ctx.error(first.file, first.field, f"version {mf.version} (not loaded by version_policy) does not match "
                  f"the config it was published with: {first.message}", first.fix)
    else:
        ctx.warn(first.file, first.field, f"version {mf.version} is not loaded by version_policy, and does not "
                 f"match the current config: {first.message}", "remove the version, or fix it before a policy "
                 "change loads it")


def _io(cfg: Any) -> list[tuple[str, list[int]]]:
    if cfg is None:
        return []
    return [(t.name, list(t.dims)) for t in list(cfg.input) + list(cfg.output)]


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        key = p.severity + p.line()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def validate_model(model_dir: str | os.PathLike[str], *, target_triton: str | None = None,
                   repository: str | os.PathLike[str] | None = None, name: str | None = None,
                   present: set[int] | None = None, checksums: bool = True) -> list[Problem]:
    """Problems of one model folder (e.g. a staged version before publishing).

    Args:
        model_dir: the ``<repo>/<model>`` folder (config.pbtxt + version folders).
        target_triton: Triton container release (``"24.09"``) whose TensorRT plans must match.
        repository: where ensemble steps' models are looked up (default: ``model_dir``'s parent).
        name: the model's name when the folder is a staging copy with another name.
        present: versions the config may name that live outside ``model_dir`` (already published
            beside a staged copy), so their absence here is not an error.
        checksums: check the files of versions that have a manifest against it.
    """
    path = Path(model_dir)
    shown = name or path.name
    if fs.kind(path) != "dir":
        return [Problem(ERROR, shown, "", "folder", "model folder is missing or not a folder",
                        "pass the folder that holds config.pbtxt and the version folders")]
    problems = [p for p in [_target_problem(target_triton)] if p]
    entry = load_entry(shown, path)
    index = Index(Path(repository) if repository is not None else path.parent, {shown: entry})
    return problems + _check_entry(entry, index, target_triton, present, checksums)


def validate_repository(path: str | os.PathLike[str], *, target_triton: str | None = None,
                        checksums: bool = True) -> list[Problem]:
    """Problems of every model in a Triton model repository; an empty list means clean.

    ``checksums=False`` skips hashing the files of versions that have a manifest (fast on huge models).
    """
    root = Path(path)
    k = fs.kind(root)
    if k != "dir":
        what = "is missing" if k == "missing" else f"is not a folder ({k})"
        return [Problem(ERROR, "", str(root), "repository", f"repository {what}",
                        "pass the folder that holds the model folders")]
    problems = [p for p in [_target_problem(target_triton)] if p]
    names, why = fs.list_dir(root)
    if names is None:
        return problems + [Problem(ERROR, "", str(root), "repository", f"repository {why}",
                                   "make the folder readable")]
    entries: dict[str, Entry] = {}
    root_real = os.path.realpath(root)
    for n in names:
        p = root / n
        if fs.kind(p) != "dir":
            continue  # Triton ignores files at the top level
        if n.startswith("."):
            problems.append(Problem(ERROR, n, "", "folder", "hidden folder at the top level; Triton takes "
                                    "every top-level folder as a model, hidden ones too",
                                    "move it out of the repository"))
            continue
        entry = load_entry(n, p)
        if not entry.has_config_file and not _has_version_folder(p):
            problems.append(Problem(ERROR, n, "", "folder", "stray folder: no config.pbtxt and no version "
                                    "folder, yet Triton takes it as a model and fails to load it",
                                    "move it out of the repository"))
            continue
        if not fs.inside(root_real, p):
            problems.append(Problem(WARNING, n, "", "folder", "model folder is a symlink to outside the "
                                    "repository", "copy the model in so the repository is self-contained"))
        entries[n] = entry
    if not entries and not problems:
        problems.append(Problem(WARNING, "", "", "repository", "repository holds no models",
                                "add one with tritonkit repo add"))
    index = Index(root, dict(entries))
    for entry in entries.values():
        problems.extend(_check_entry(entry, index, target_triton, None, checksums))
    return problems


def _has_version_folder(path: Path) -> bool:
    names, _ = fs.list_dir(path)
    return any(VERSION_RE.fullmatch(n) for n in names or [])


def summary(problems: list[Problem]) -> str:
    """``N errors, M warnings in K models`` (K counts models with a problem)."""
    errors = sum(p.is_error for p in problems)
    notes = sum(p.severity == NOTE for p in problems)
    warnings = len(problems) - errors - notes
    models = len({p.model for p in problems if p.model and p.severity != NOTE})
    noted = f", {notes} note{'s' * (notes != 1)}" if notes else ""
    if errors + warnings == 0:
        return f"repository is clean: 0 errors, 0 warnings{noted}"
    return (f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} in {models} "
            f"model{'s' * (models != 1)}{noted}")
