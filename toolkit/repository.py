"""The versioned model repository: publish new versions atomically, never modify old ones.

Publishing builds the whole version (and, on first publish, the whole model folder) in a staging
folder OUTSIDE the repository on the same filesystem, fsyncs it, and renames it into place; the
model's ``config.pbtxt`` and labels are replaced by rename last. A lock file beside the repository
serializes writers. A crash at any point leaves either the old state or the new, never a half
version: Triton (which may be polling) only ever sees complete folders.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import toolkit
from toolkit.errors import RepositoryError, UsageError
from toolkit.fileio import fsync_path, sha256_of
from toolkit.spec import ModelSpec, TensorSpec
from toolkit.triton_config import (
    ONNX_PLATFORM,
    PLAN_PLATFORM,
    ServingOptions,
    build_config,
    config_to_text,
    read_config,
)

MANIFEST = "manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_VERSION_RE = re.compile(r"[1-9][0-9]*", re.ASCII)  # what Triton loads: ASCII digits, no leading zero
_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)  # a file name inside a version folder
# Publishing steps, in order; tests inject faults between them through TRITONKIT_FAULT_AT.
STEPS = ("staged", "fsynced", "version_renamed", "config_replaced")


def check_model_name(name: str) -> str:
    """Model names become folder names: refuse separators, dot-names and control characters."""
    if not name or not _NAME_RE.match(name) or name in (".", "..") or ".." in name:
        raise UsageError(
            f"model name {name!r} is invalid; use letters, digits, '_', '-' and '.' "
            "(no '/', no '..', no control characters)"
        )
    return name


def version_numbers(model_dir: Path) -> list[int]:
    """Numeric version folders as Triton sees them (no leading zero), ascending."""
    if not model_dir.is_dir():
        return []
    out = []
    for p in model_dir.iterdir():
        if p.is_dir() and _VERSION_RE.fullmatch(p.name):
            out.append(int(p.name))
    return sorted(out)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            fsync_path(os.path.join(dirpath, f))
        fsync_path(dirpath)


def _fault(step: str) -> None:
    """Test hook: ``TRITONKIT_FAULT_AT=<step>`` kills the process right after that step."""
    if os.environ.get("TRITONKIT_FAULT_AT") == step:
        os.kill(os.getpid(), 9)


def _side_dir(repository: Path, suffix: str) -> Path:
    """A folder beside the repository (same filesystem, not inside what Triton scans)."""
    repository = repository.resolve()
    return repository.parent / f".{repository.name}.{suffix}"


@contextmanager
def repository_lock(repository: Path, timeout: float = 120.0) -> Iterator[None]:
    """Exclusive lock serializing writers of one repository (flock on a file beside it)."""
    lock_path = _side_dir(repository, "lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "a+")  # noqa: SIM115 - held for the duration of the context
    except OSError as exc:
        raise RepositoryError(
            f"{repository}: cannot take the writer lock {lock_path} ({exc.strerror}); the repository is "
            "unchanged. Fix permissions or free space and retry"
        ) from None
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RepositoryError(
                        f"{repository}: another writer holds {lock_path} for over {timeout:.0f}s; "
                        "wait for it or remove a stale lock holder"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        fh.close()


def spec_from_onnx_graph(path: Path, labels: tuple[str, ...] = ()) -> ModelSpec:
    """Inputs/outputs read from the ONNX graph itself (dims without batch, -1 for dynamic)."""
    import onnx

    from toolkit.spec import METADATA_SPEC_KEY

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise RepositoryError(f"{path}: not a readable ONNX model ({type(exc).__name__}); re-export it") from None
    initializers = {i.name for i in proto.graph.initializer}

    def tensors(values: Any) -> tuple[TensorSpec, ...]:
        out = []
        for v in values:
            if v.name in initializers:
                continue
            tt = v.type.tensor_type
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            if not dims:
                raise RepositoryError(f"{path}: tensor {v.name!r} has no shape; re-export with shapes")
            out.append(TensorSpec(v.name, tuple(dims[1:]), "object" if dtype == "object" else dtype))
        return tuple(out)

    meta = {p.key: p.value for p in proto.metadata_props}
    base = ModelSpec.from_dict(json.loads(meta[METADATA_SPEC_KEY])) if METADATA_SPEC_KEY in meta else None
    return ModelSpec(
        inputs=tensors(proto.graph.input),
        outputs=tensors(proto.graph.output),
        layout=base.layout if base else "NCHW",
        mean=base.mean if base else (),
        std=base.std if base else (),
        scale=base.scale if base else 1.0,
        value_range=base.value_range if base else (0.0, 1.0),
        labels=labels or (base.labels if base else ()),
    )


@dataclass
class Published:
    """What a publish did: the version folder, or that the latest version already matched."""

    model: str
    version: int
    path: Path
    created: bool


def _latest_manifest(model_dir: Path) -> dict[str, Any] | None:
    versions = version_numbers(model_dir)
    if not versions:
        return None
    try:
        return json.loads((model_dir / str(versions[-1]) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


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
    """Publish an ONNX model as a new version of ``name`` (config from the graph, atomic)."""
    repository = Path(repository)
    check_model_name(name)
    options = options or ServingOptions()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file() or onnx_path.stat().st_size == 0:
        raise RepositoryError(f"{onnx_path}: ONNX file missing or empty; run 'tritonkit export' first")
    options.validate()
    spec = spec_from_onnx_graph(onnx_path, tuple(labels or ()))
    _check_labels(spec)
    if options.label_filename is None or not spec.labels:
        options = replace(options, label_filename=None)
    cfg = build_config(name, spec, ONNX_PLATFORM, options)
    config_text = config_to_text(cfg)
    files = {"model.onnx": onnx_path, **_external_data_files(onnx_path)}
    model_sha = sha256_of(onnx_path)
    if len(files) > 1:
        model_sha = _text_sha("".join(f"{rel}:{sha256_of(p)}" for rel, p in sorted(files.items())))
    return _publish(repository, name, files, config_text, spec, model_sha, provenance or {}, skip_if_unchanged)


def _external_data_files(onnx_path: Path) -> dict[str, Path]:
    """External data files the model needs, published beside it; a location escaping the model's
    folder (absolute, ``..``, symlink), in any subgraph, is refused before anything is written."""
    import onnx

    from toolkit.errors import ExportError
    from toolkit.onnx_safety import check_location, external_locations

    proto = onnx.load(str(onnx_path), load_external_data=False)
    out: dict[str, Path] = {}
    for loc in external_locations(proto):
        try:
            src = check_location(loc, onnx_path.parent, where=str(onnx_path))
        except ExportError as exc:
            raise RepositoryError(str(exc)) from None
        if not src.is_file():
            raise RepositoryError(f"{onnx_path}: external data file {loc!r} is missing; copy it beside the model")
        out[loc] = onnx_path.parent / loc
    return out


def _check_labels(spec: ModelSpec) -> None:
    if spec.labels and spec.outputs and spec.outputs[0].shape and spec.outputs[0].shape[-1] > 0:
        classes = spec.outputs[0].shape[-1]
        if len(spec.labels) != classes:
            raise UsageError(
                f"{len(spec.labels)} labels given for an output of {classes} classes; "
                "give one label per class (one per line)"
            )


def read_plan_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON record written beside a TensorRT plan (profiles, versions, I/O, sha256)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RepositoryError(f"{path}: cannot read the plan record ({exc}); rebuild with 'tritonkit build'") from None
    if not isinstance(record, dict):
        raise RepositoryError(f"{path}: a plan record is a JSON object; rebuild with 'tritonkit build'")
    for key in ("inputs", "outputs", "max_batch_size", "tensorrt_version"):
        if key not in record:
            raise RepositoryError(f"{path}: plan record lacks {key!r}; rebuild with 'tritonkit build'")
    try:
        int(record["max_batch_size"])
        for t in [*record["inputs"], *record["outputs"]]:
            TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"]), str(t["dtype"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise RepositoryError(f"{path}: plan record has malformed max_batch_size or tensors ({exc}); "
                              "rebuild with 'tritonkit build'") from None
    return record


def publish_plan(
    repository: str | os.PathLike[str],
    name: str,
    plans: dict[str, str | os.PathLike[str]],
    records: dict[str, dict[str, Any]],
    options: ServingOptions | None = None,
    *,
    labels: list[str] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Published:
    """Publish TensorRT plans as a new version (``tensorrt_plan``).

    ``plans`` maps a compute capability (``"8.6"``) to a plan file, ``records`` the same keys to
    their build records. One plan is ``model.plan``; several become ``model_<cc>.plan`` listed in
    ``cc_model_filenames``. ``max_batch_size`` may not exceed any plan's profile maximum.
    """
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
    _check_labels(spec)
    if not spec.labels:
        options = replace(options, label_filename=None)
    files: dict[str, Path] = {}
    cc_names: dict[str, str] = {}
    for cc, path in plans.items():
        p = Path(path)
        if not p.is_file() or p.stat().st_size == 0:
            raise RepositoryError(f"{p}: plan file missing or empty; build it with 'tritonkit build'")
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
    model_sha = _text_sha("".join(sha256_of(p) for p in files.values()))
    return _publish(Path(repository), name, files, config_to_text(cfg), spec, model_sha, prov, False)


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
    """
    from toolkit.triton_config import build_ensemble_config, build_preprocess_config

    check_model_name(name)
    pre_name = f"{classifier}_preprocess"
    check_model_name(pre_name)
    if len(spec.inputs) != 1 or len(spec.input.shape) != 3 or any(d <= 0 for d in spec.input.shape):
        raise UsageError(
            f"an image ensemble needs one fixed-size (C, H, W) input; {classifier} has "
            f"{[list(t.shape) for t in spec.inputs]}"
        )
    model_py = Path(__file__).parent / "preprocessing" / "model.py"
    pre_cfg = config_to_text(build_preprocess_config(pre_name, spec, max_batch_size))
    out = [_publish(Path(repository), pre_name, {"model.py": model_py}, pre_cfg, replace(spec, labels=()),
                    _text_sha(sha256_of(model_py) + pre_cfg), {}, skip_if_unchanged)]
    ens_cfg = config_to_text(build_ensemble_config(name, pre_name, classifier, spec, max_batch_size))
    out.append(_publish(Path(repository), name, {}, ens_cfg, spec, _text_sha(ens_cfg), {}, skip_if_unchanged))
    return out


def _publish(
    repository: Path,
    name: str,
    files: dict[str, Path],
    config_text: str,
    spec: ModelSpec,
    model_sha: str,
    provenance: dict[str, Any],
    skip_if_unchanged: bool,
) -> Published:
    if repository.exists() and not repository.is_dir():
        raise RepositoryError(f"{repository}: exists and is not a folder; choose another --repository")
    try:
        repository.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepositoryError(f"{repository}: cannot create the repository ({exc.strerror}); "
                              "fix permissions or choose another --repository") from None
    model_dir = repository / name
    labels_text = "".join(f"{label}\n" for label in spec.labels)
    with repository_lock(repository):
        latest = _latest_manifest(model_dir)
        if (
            skip_if_unchanged
            and latest is not None
            and latest.get("model_sha256") == model_sha
            and latest.get("config_sha256") == _text_sha(config_text)
            and (model_dir / "config.pbtxt").is_file()
        ):
            v = version_numbers(model_dir)[-1]
            return Published(name, v, model_dir / str(v), created=False)
        version = (version_numbers(model_dir) or [0])[-1] + 1
        staging_root = _side_dir(repository, "staging")
        try:
            staging_root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if staging_root.stat().st_uid != os.geteuid():
                raise RepositoryError(
                    f"{staging_root}: the staging folder belongs to another user, who could swap staged files; "
                    "remove it or publish into a repository whose parent folder only you can write"
                )
            stage = Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=staging_root))
        except OSError as exc:
            raise RepositoryError(
                f"{repository}: cannot stage version {version} of {name} in {staging_root} ({exc.strerror}); "
                "the repository is unchanged. Fix permissions or free space and retry"
            ) from None
        moved_in = False
        try:
            vdir = stage / "model" / str(version)
            vdir.mkdir(parents=True)
            manifest_files = {}
            for target, src in files.items():
                (vdir / target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, vdir / target)
                manifest_files[target] = sha256_of(vdir / target)
            manifest = {
                "model": name,
                "version": version,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "files": manifest_files,
                "model_sha256": model_sha,
                "config_sha256": _text_sha(config_text),
                "config": config_text,
                "labels": list(spec.labels),
                "spec": spec.to_dict(),
                "tritonkit": toolkit.__version__,
                "libraries": _library_versions(),
                **provenance,
            }
            (vdir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            (stage / "model" / "config.pbtxt").write_text(config_text)
            if labels_text:
                (stage / "model" / "labels.txt").write_text(labels_text)
            _fault("staged")
            _fsync_tree(stage)
            _fault("fsynced")
            if not model_dir.exists():
                os.rename(stage / "model", model_dir)
                fsync_path(repository)
                _fault("version_renamed")
                _fault("config_replaced")
            else:
                os.rename(vdir, model_dir / str(version))
                moved_in = True
                fsync_path(model_dir)
                _fault("version_renamed")
                if labels_text:
                    os.replace(stage / "model" / "labels.txt", model_dir / "labels.txt")
                os.replace(stage / "model" / "config.pbtxt", model_dir / "config.pbtxt")
                fsync_path(model_dir)
                _fault("config_replaced")
        except OSError as exc:
            if moved_in:  # the new version is in but its config is not: take it back out
                try:
                    os.rename(model_dir / str(version), stage / "withdrawn")
                except OSError:
                    raise RepositoryError(
                        f"{repository}: publishing {name} version {version} failed ({exc.strerror or exc}) after "
                        f"the version folder was renamed in and could not be withdrawn; delete "
                        f"{model_dir / str(version)} by hand"
                    ) from None
            raise RepositoryError(
                f"{repository}: publishing {name} version {version} failed ({exc.strerror or exc}); "
                "the repository is unchanged. Free space or fix permissions and retry"
            ) from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return Published(name, version, model_dir / str(version), created=True)


def _text_sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "onnx", "onnxruntime", "tritonclient", "nvidia-pytriton", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def list_models(repository: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Models and versions with platform, size, max batch, metrics and creation time."""
    repository = Path(repository)
    if not repository.is_dir():
        raise RepositoryError(f"{repository}: repository not found; build one with 'make repo'")
    rows = []
    for model_dir in sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cfg_path = model_dir / "config.pbtxt"
        platform_name, max_batch = "?", None
        if cfg_path.is_file():
            try:
                cfg = read_config(cfg_path)
                platform_name = cfg.platform or cfg.backend
                max_batch = cfg.max_batch_size
            except RepositoryError:
                platform_name = "unparsable config"
        for v in version_numbers(model_dir):
            vdir = model_dir / str(v)
            manifest: dict[str, Any] = {}
            try:
                manifest = json.loads((vdir / MANIFEST).read_text())
            except (OSError, ValueError):
                pass
            size = sum(f.stat().st_size for f in vdir.rglob("*") if f.is_file())
            rows.append({
                "model": model_dir.name, "version": v, "platform": platform_name,
                "size_bytes": size, "max_batch_size": max_batch,
                "metrics": manifest.get("checkpoint_metrics", {}),
                "created": manifest.get("created"),
            })
    return rows


def verify_version(version_dir: str | os.PathLike[str]) -> list[str]:
    """Files whose sha256 differs from the version's manifest (empty list = intact)."""
    version_dir = Path(version_dir)
    try:
        manifest = json.loads((version_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return [f"{MANIFEST}: unreadable ({exc})"]
    bad = []
    for rel, sha in manifest.get("files", {}).items():
        p = version_dir / rel
        if not p.is_file() or sha256_of(p) != sha:
            bad.append(rel)
    return bad


def _safe_relative(rel: str) -> bool:
    """A plain relative path inside a version folder: no absolute path, no '..', simple names."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(_FILE_RE.fullmatch(p) for p in parts)


def rollback(repository: str | os.PathLike[str], name: str, to: int) -> Published:
    """Serve an older version again by publishing a copy of it as a new version (history kept).

    The old version is copied to a private folder under the lock (so a concurrent prune cannot
    pull it away mid-read), its files are checked against its manifest, then published as usual.
    """
    repository = Path(repository)
    check_model_name(name)
    src = repository / name / str(to)
    with repository_lock(repository):
        have = version_numbers(repository / name)
        if to not in have:
            raise RepositoryError(f"{name}: no version {to} to roll back to; versions present: {have}")
        try:
            manifest = json.loads((src / MANIFEST).read_text())
            listed = dict(manifest["files"])
            config_text, spec = str(manifest["config"]), ModelSpec.from_dict(manifest["spec"])
            model_sha = str(manifest["model_sha256"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RepositoryError(f"{src / MANIFEST}: unreadable or incomplete manifest ({exc}); "
                                  "this version cannot be rolled back to") from None
        bad = [rel for rel in listed if not _safe_relative(str(rel))]
        if bad:
            raise RepositoryError(f"{src / MANIFEST}: lists file names outside the version folder {bad[:3]}; "
                                  "refusing to roll back to it")
        changed = verify_version(src)
        if changed:
            raise RepositoryError(f"{src}: files differ from the manifest ({', '.join(changed[:3])}); "
                                  "refusing to roll back to a modified version")
        copy_dir = Path(tempfile.mkdtemp(prefix=f"rollback-{name}-{to}-"))
        try:
            files = {}
            for rel in listed:
                (copy_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                files[rel] = Path(shutil.copy2(src / rel, copy_dir / rel))
        except OSError as exc:
            shutil.rmtree(copy_dir, ignore_errors=True)
            raise RepositoryError(f"{src}: cannot copy version {to} ({exc.strerror}); nothing changed") from None
    try:
        prov = {k: v for k, v in manifest.items() if k.startswith("checkpoint") or k in ("parity", "export")}
        prov["rolled_back_from"] = to
        return _publish(repository, name, files, config_text, spec, model_sha, prov, False)
    finally:
        shutil.rmtree(copy_dir, ignore_errors=True)


def prune(repository: str | os.PathLike[str], name: str, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` versions (each removed by rename-then-delete)."""
    if keep < 1:
        raise UsageError(f"--keep {keep}: keep at least 1 version")
    repository = Path(repository)
    check_model_name(name)
    model_dir = repository / name
    with repository_lock(repository):
        versions = version_numbers(model_dir)
        doomed = versions[:-keep]
        trash = _side_dir(repository, "trash")
        removed = []
        try:
            trash.mkdir(parents=True, exist_ok=True)
            for v in doomed:
                dest = Path(tempfile.mkdtemp(dir=trash)) / str(v)
                os.rename(model_dir / str(v), dest)
                removed.append(v)
                shutil.rmtree(dest.parent, ignore_errors=True)
        except OSError as exc:
            raise RepositoryError(
                f"{model_dir}: pruning stopped ({exc.strerror}) after removing versions {removed or 'none'}; "
                "fix permissions and run it again"
            ) from None
    return doomed
