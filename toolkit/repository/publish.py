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
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import toolkit
from contract.errors import RepositoryError, UsageError
from contract.fileio import NotRegularFileError, atomic_write_bytes, fsync_path, read_regular_text, sha256_of
from contract.spec import ModelSpec, TensorSpec
from toolkit.repository.config import (
    ONNX_PLATFORM,
    PLAN_PLATFORM,
    ServingOptions,
    build_config,
    config_to_text,
    parse_config,
)
from toolkit.repository.validate.manifest import named_versions, unlisted_entries

MANIFEST = "manifest.json"
CONFIG = "config.pbtxt"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
STAGING_PREFIX = ".tritonkit-staging-"  # inside a model folder: not a number, so Triton ignores it
TRASH_PREFIX = ".tritonkit-trash-"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_VERSION_RE = re.compile(r"[1-9][0-9]*", re.ASCII)  # what Triton loads: ASCII digits, no leading zero
_ANY_NUMBER_RE = re.compile(r"[0-9]+", re.ASCII)  # every name Triton might take as a version number
_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)  # a file name inside a version folder
_LABELS_RE = re.compile(r"labels_[0-9a-f]{12}\.txt", re.ASCII)
_SIDE_STAGE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*-[0-9]+-[A-Za-z0-9_]{8}", re.ASCII)
_OURS_RE = re.compile(rf"(?:{re.escape(STAGING_PREFIX)}|{re.escape(TRASH_PREFIX)})[0-9]+-[A-Za-z0-9_]{{8}}",
                      re.ASCII)
_TMP_CONFIG_RE = re.compile(r"\.config\.pbtxt\.[A-Za-z0-9_]{8}\.tmp", re.ASCII)
# Publishing steps, in order; tests inject faults between them through TRITONKIT_FAULT_AT.
STEPS = ("cleaned", "staged", "validated", "fsynced", "labels_written", "version_renamed", "config_replaced",
         "done")


def check_model_name(name: str) -> str:
    """Model names become folder names: refuse separators, dot-names and control characters."""
    if not name or not _NAME_RE.match(name) or name in (".", "..") or ".." in name:
        raise UsageError(
            f"model name {name!r} is invalid; use letters, digits, '_', '-' and '.' "
            "(no '/', no '..', no control characters)"
        )
    return name


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_real_dir(path: Path) -> bool:
    """A folder that is not a symlink (symlinks are never followed out of the repository)."""
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def version_numbers(model_dir: Path) -> list[int]:
    """Numeric version folders as Triton sees them (no leading zero, real folders), ascending."""
    return sorted(int(n) for n in _names(Path(model_dir))
                  if _VERSION_RE.fullmatch(n) and _is_real_dir(Path(model_dir) / n))


def _taken_numbers(model_dir: Path) -> list[int]:
    """Every numeric name in the model folder, whatever it is: a new version never reuses one."""
    return sorted(int(n) for n in _names(model_dir) if _ANY_NUMBER_RE.fullmatch(n))


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
    """A folder beside the repository (not inside what Triton scans)."""
    repository = repository.resolve()
    return repository.parent / f".{repository.name}.{suffix}"


def _check_ours(path: Path, what: str, st: os.stat_result) -> None:
    """Refuse a lock or staging path another user could control (owner, mode, symlink)."""
    if st.st_uid != os.geteuid():
        raise RepositoryError(
            f"{path}: the {what} belongs to user id {st.st_uid}, who could tamper with what tritonkit writes; "
            "remove it, or publish into a repository whose parent folder only you can write"
        )
    if st.st_mode & 0o022:
        raise RepositoryError(
            f"{path}: the {what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run 'chmod go-w {path}' or remove it"
        )


def _open_lock(lock_path: Path) -> int:
    """Open (or create) the lock file without following a symlink; it must be ours and regular."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_path, flags | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            fd = os.open(lock_path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RepositoryError(
                    f"{lock_path}: the writer lock is a symlink (it could make tritonkit create or truncate a "
                    "file elsewhere); remove it and retry") from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise RepositoryError(f"{lock_path}: the writer lock is not a plain regular file (a device, FIFO or a "
                                  "hard link to another file); remove it and retry")
        _check_ours(lock_path, "writer lock", st)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def repository_lock(repository: Path, timeout: float = 120.0) -> Iterator[None]:
    """Exclusive lock serializing writers of one repository (flock on a file beside it)."""
    lock_path = _side_dir(repository, "lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(lock_path)
    except OSError as exc:
        raise RepositoryError(
            f"{repository}: cannot take the writer lock {lock_path} ({exc.strerror}); the repository is "
            "unchanged. Fix permissions or free space and retry"
        ) from None
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        os.close(fd)


def _read_text(path: Path, what: str, limit: int) -> str:
    """A repository file's text: regular files only (a FIFO never blocks), symlinks refused."""
    try:
        return read_regular_text(path, limit=limit, follow_symlinks=False)
    except FileNotFoundError:
        raise RepositoryError(f"{path}: {what} is missing") from None
    except NotRegularFileError as exc:
        raise RepositoryError(f"{path}: {what} is not a regular file ({exc}); replace it with the file "
                              "tritonkit wrote or remove the version") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RepositoryError(f"{path}: cannot read the {what} ({exc}); fix permissions or remove it") from None


def read_manifest(version_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The version's manifest, read safely; RepositoryError (one line) when unusable."""
    path = Path(version_dir) / MANIFEST
    text = _read_text(path, "manifest", MAX_MANIFEST_BYTES)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RepositoryError(f"{path}: manifest is not JSON ({exc}); this version cannot be used") from None
    if not isinstance(data, dict):
        raise RepositoryError(f"{path}: manifest is not a JSON object; this version cannot be used")
    return data


def read_live_config(model_dir: str | os.PathLike[str]) -> Any:
    """The model's live ``config.pbtxt`` (None when absent); RepositoryError when unusable."""
    path = Path(model_dir) / CONFIG
    if _lstat(path) is None:
        return None
    return parse_config(_read_text(path, "config", MAX_CONFIG_BYTES), str(path))


def _without_policy(cfg: Any) -> Any:
    c = type(cfg)()
    c.CopyFrom(cfg)
    c.ClearField("version_policy")
    return c


def configs_agree(a: Any, b: Any) -> bool:
    """Whether two configs serve a version identically (they may differ only in version_policy)."""
    return _without_policy(a) == _without_policy(b)


def recorded_config(version_dir: str | os.PathLike[str], manifest: dict[str, Any] | None = None) -> Any:
    """The config a version was published with, its checksum checked; RepositoryError otherwise."""
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir) if manifest is None else manifest
    where = version_dir / MANIFEST
    text, want = manifest.get("config"), manifest.get("config_sha256")
    if not isinstance(text, str) or not isinstance(want, str):
        raise RepositoryError(f"{where}: manifest lacks 'config' or 'config_sha256'; this version cannot be used")
    if _text_sha(text) != want:
        raise RepositoryError(f"{where}: the recorded config does not match its config_sha256 (the manifest was "
                              "modified after publishing); refusing to use this version")
    return parse_config(text, f"{where} (recorded config)")


def spec_from_onnx_graph(path: Path, labels: tuple[str, ...] = (), *, batched: bool = True) -> ModelSpec:
    """Inputs/outputs read from the ONNX graph itself (dims without batch, -1 for dynamic).

    ``batched=False`` (a config with ``max_batch_size: 0``) keeps every dim: Triton then passes the
    full shape, so dropping the first one would publish a config Triton refuses.
    """
    import onnx

    from contract.spec import METADATA_SPEC_KEY

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
            shape = tuple(dims[1:] if batched else dims)
            out.append(TensorSpec(v.name, shape, "object" if dtype == "object" else dtype))
        return tuple(out)

    meta = {p.key: p.value for p in proto.metadata_props}
    base = (ModelSpec.from_json(meta[METADATA_SPEC_KEY], where=f"{path} ({METADATA_SPEC_KEY} metadata)")
            if METADATA_SPEC_KEY in meta else None)
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
    _check_source(onnx_path, "ONNX file", "run 'tritonkit export' first")
    options.validate()
    spec = spec_from_onnx_graph(onnx_path, tuple(labels or ()), batched=options.max_batch_size > 0)
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

    from contract.errors import ExportError
    from toolkit.export.safety import check_location, external_locations

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


def _check_source(path: Path, what: str, fix: str) -> None:
    """A file to publish must be a non-empty regular file (a FIFO would hang the copy)."""
    st = _lstat(path)
    if st is None:
        raise RepositoryError(f"{path}: {what} does not exist; {fix}")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RepositoryError(f"{path}: {what} cannot be read ({exc.strerror}); {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise RepositoryError(f"{path}: {what} is not a regular file (a FIFO, device or folder); {fix}")
    if st.st_size == 0:
        raise RepositoryError(f"{path}: {what} is empty; {fix}")


def _check_labels(spec: ModelSpec) -> None:
    bad = [label for label in spec.labels if not str(label).strip() or any(c in str(label) for c in "\r\n\x00")]
    if bad:
        raise UsageError(
            f"label {bad[0]!r} is empty or holds a line break or NUL, which would shift every later class in "
            "the label file; give single-line labels (fix the labels file or the checkpoint's labels)"
        )
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
        _check_source(p, "plan file", "build it with 'tritonkit build'")
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
    from toolkit.repository.config import build_ensemble_config, build_preprocess_config

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
    _prepare_repository(repository)
    with repository_lock(repository):
        return _publish_locked(repository, name, files, config_text, spec, model_sha, provenance,
                               skip_if_unchanged)


def _prepare_repository(repository: Path) -> None:
    # The repository root itself may be a symlink the user made (e.g. to a data disk); nothing inside it is followed.
    if _lstat(repository) is not None and not repository.is_dir():
        raise RepositoryError(f"{repository}: exists and is not a folder; choose another --repository")
    try:
        repository.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepositoryError(f"{repository}: cannot create the repository ({exc.strerror}); "
                              "fix permissions or choose another --repository") from None


def labels_filename(labels: tuple[str, ...] | list[str]) -> str:
    """Content-addressed label file name: a new config never changes the labels an old one names."""
    return f"labels_{_text_sha(''.join(f'{label}{chr(10)}' for label in labels))[:12]}.txt"


def _with_label_file(config_text: str, spec: ModelSpec, where: str) -> str:
    """The requested config with every ``label_filename`` set to the content-addressed name."""
    cfg = parse_config(config_text, where)
    if not spec.labels:
        return config_text
    changed = False
    for out in cfg.output:
        if out.label_filename and out.label_filename != labels_filename(spec.labels):
            out.label_filename = labels_filename(spec.labels)
            changed = True
    return config_to_text(cfg) if changed else config_text


def _live_state(model_dir: Path) -> tuple[Any, list[int]]:
    """(live config or None, versions it names). An unusable live config names nothing."""
    try:
        cfg = read_live_config(model_dir)
    except RepositoryError:
        return None, []
    return cfg, named_versions(cfg, version_numbers(model_dir))


def _compatible_versions(model_dir: Path, requested: Any, new_version: int, named: list[int]) -> list[int]:
    """Versions the new live config names: the new one, plus published older ones whose recorded
    config (checksum checked) equals the new config, within the requested policy."""
    choice = requested.version_policy.WhichOneof("policy_choice")
    limit = None if choice in ("all", "specific") else max(
        requested.version_policy.latest.num_versions if choice == "latest" else 1, 1)
    wanted = set(requested.version_policy.specific.versions) if choice == "specific" else None
    out = [new_version]
    top = max(named) if named else 0  # versions above every named one were never published
    for v in reversed(version_numbers(model_dir)):
        if limit is not None and len(out) >= limit:
            break
        if v >= new_version or v > top or (wanted is not None and v not in wanted):
            continue
        try:
            if configs_agree(recorded_config(model_dir / str(v)), requested):
                out.append(v)
        except RepositoryError:
            continue  # an unreadable or tampered version is never named
    return sorted(out)


def _pinned(requested: Any, versions: list[int]) -> str:
    cfg = type(requested)()
    cfg.CopyFrom(requested)
    cfg.ClearField("version_policy")
    cfg.version_policy.specific.versions.extend(versions)
    return config_to_text(cfg)


def _refuse_invalid(staged_model: Path, name: str, repository: Path, version: int, elsewhere: set[int]) -> None:
    """Run the repository validator's rules on the staged model folder; refuse on any error."""
    from toolkit.repository.validate import validate_model

    problems = [p for p in validate_model(staged_model, repository=repository, name=name, present=elsewhere,
                                          checksums=True)
                if p.is_error]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RepositoryError(
            f"{repository / name}: refusing to publish version {version}, Triton would not load it: "
            f"{problems[0].line()}{more}; the repository is unchanged"
        )


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
            if _FILE_RE.fullmatch(label_file) and _lstat(model_dir / label_file) is not None:
                (stage / "model" / label_file).write_text(
                    _read_text(model_dir / label_file, "label file", MAX_CONFIG_BYTES * 16))
        from toolkit.repository.validate import validate_model

        errors = [p for p in validate_model(stage / "model", repository=repository, name=name, present=present,
                                            checksums=False) if p.is_error]
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if errors:
        raise RepositoryError(f"{model_dir}: refusing to write a config Triton would not load: {errors[0].line()}; "
                              "the repository is unchanged")


def _clean_stale(repository: Path, model_dir: Path) -> list[str]:
    """Remove staging and trash folders of killed writers (we hold the lock, so no writer is alive).

    Only folders that are ours are touched: our naming pattern, our user, real folders (not
    symlinks), inside the model folder or the side staging folder.
    """
    removed = []
    candidates = [model_dir / n for n in _names(model_dir) if _OURS_RE.fullmatch(n) or _TMP_CONFIG_RE.fullmatch(n)]
    side = _side_dir(repository, "staging")
    side_st = _lstat(side)
    if side_st is not None and stat.S_ISDIR(side_st.st_mode) and side_st.st_uid == os.geteuid():
        candidates += [side / n for n in _names(side) if _SIDE_STAGE_RE.fullmatch(n)]
    for path in candidates:
        st = _lstat(path)
        if st is None or st.st_uid != os.geteuid():
            continue
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        elif stat.S_ISREG(st.st_mode):
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(str(path))
    return removed


def _stage_root(repository: Path, model_dir: Path, name: str, version: int) -> tuple[Path, bool]:
    """(staging folder, whether it is beside the repository) on the repository's own filesystem."""
    if _is_real_dir(model_dir):
        return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=model_dir)), False
    if _lstat(model_dir) is not None:
        raise RepositoryError(f"{model_dir}: exists and is not a real folder (a file or symlink); move it out of "
                              "the repository")
    side = _side_dir(repository, "staging")
    try:
        same_fs = os.stat(repository).st_dev == os.stat(side.parent).st_dev
    except OSError:
        same_fs = False
    if same_fs:
        side.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(side)
        if not stat.S_ISDIR(st.st_mode):
            raise RepositoryError(f"{side}: the staging folder is not a real folder; remove it and retry")
        _check_ours(side, "staging folder", st)
        return Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=side)), True
    # The repository is its own mount point: stage inside the (new, empty) model folder.
    model_dir.mkdir()
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=model_dir)), False


def _publish_locked(
    repository: Path,
    name: str,
    files: dict[str, Path],
    config_text: str,
    spec: ModelSpec,
    model_sha: str,
    provenance: dict[str, Any],
    skip_if_unchanged: bool,
    expected: dict[str, str] | None = None,
) -> Published:
    model_dir = repository / name
    _clean_stale(repository, model_dir)
    _fault("cleaned")
    config_text = _with_label_file(config_text, spec, f"{name}: config to publish")
    requested = parse_config(config_text, f"{name}: config to publish")
    labels_text = "".join(f"{label}\n" for label in spec.labels)
    live, named = _live_state(model_dir)
    if skip_if_unchanged and live is not None and named:
        try:
            latest = read_manifest(model_dir / str(named[-1]))
            same = (latest.get("model_sha256") == model_sha and latest.get("config_sha256") == _text_sha(config_text)
                    and configs_agree(live, requested) and not verify_version(model_dir / str(named[-1])))
        except RepositoryError:
            same = False
        if same:
            return Published(name, named[-1], model_dir / str(named[-1]), created=False)
    version = (_taken_numbers(model_dir) or [0])[-1] + 1
    try:
        stage, beside = _stage_root(repository, model_dir, name, version)
    except OSError as exc:
        raise RepositoryError(
            f"{repository}: cannot stage version {version} of {name} in {model_dir} ({exc.strerror}); "
            "the repository is unchanged. Fix permissions or free space and retry"
        ) from None
    new_model = not beside and not version_numbers(model_dir) and _lstat(model_dir / CONFIG) is None
    moved_in = False
    try:
        staged_model = stage / "model"
        vdir = staged_model / str(version)
        vdir.mkdir(parents=True)
        manifest_files = {}
        for target, src in files.items():
            (vdir / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, vdir / target)
            manifest_files[target] = sha256_of(vdir / target)
            if expected is not None and expected.get(target) != manifest_files[target]:
                raise RepositoryError(f"{src}: changed while it was copied (sha256 differs from its manifest); "
                                      "refusing to publish it; the repository is unchanged")
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
        versions = _compatible_versions(model_dir, requested, version, named)
        live_text = _pinned(requested, versions)
        parse_config(live_text, f"{name}: config to make live")
        (staged_model / CONFIG).write_text(live_text)
        label_file = labels_filename(spec.labels) if labels_text else None
        if label_file:
            (staged_model / label_file).write_text(labels_text)
        _fault("staged")
        _refuse_invalid(staged_model, name, repository, version, set(versions) - {version})
        _fault("validated")
        _fsync_tree(stage)
        _fault("fsynced")
        if beside:  # a new model: the whole folder appears at once
            os.rename(staged_model, model_dir)
            fsync_path(repository)
            for step in ("labels_written", "version_renamed", "config_replaced"):
                _fault(step)
        else:
            if label_file:
                _place_labels(staged_model / label_file, model_dir / label_file)
            _fault("labels_written")
            if new_model:  # own mount point, no model yet: the config first, naming a version not yet there
                os.replace(staged_model / CONFIG, model_dir / CONFIG)
                fsync_path(model_dir)
            os.rename(vdir, model_dir / str(version))  # not named by the live config: Triton ignores it
            moved_in = True
            fsync_path(model_dir)
            _fault("version_renamed")
            if not new_model:
                os.replace(staged_model / CONFIG, model_dir / CONFIG)
                fsync_path(model_dir)
            _fault("config_replaced")
    except OSError as exc:
        if moved_in and not new_model:  # not named by any config, but take it back out anyway
            try:
                os.rename(model_dir / str(version), stage / "withdrawn")
            except OSError:
                raise RepositoryError(
                    f"{repository}: publishing {name} version {version} failed ({exc.strerror or exc}) after "
                    f"the version folder was renamed in (no config names it, so Triton ignores it); delete "
                    f"{model_dir / str(version)} by hand"
                ) from None
        hint = ""
        if exc.errno == errno.EXDEV:
            hint = " (the staging folder and the repository are on different filesystems)"
        raise RepositoryError(
            f"{repository}: publishing {name} version {version} failed ({exc.strerror or exc}){hint}; "
            "the repository is unchanged. Free space or fix permissions and retry"
        ) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _remove_unused_labels(model_dir)
    _fault("done")
    return Published(name, version, model_dir / str(version), created=True)


def _place_labels(staged: Path, target: Path) -> None:
    """Labels go in under their content-addressed name (an existing one holds the same text)."""
    st = _lstat(target)
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
        try:
            if read_regular_text(target, limit=MAX_CONFIG_BYTES * 16, follow_symlinks=False) == staged.read_text():
                return
        except (OSError, UnicodeDecodeError):
            pass
    os.replace(staged, target)


def _remove_unused_labels(model_dir: Path) -> None:
    """Content-addressed label files that the live config no longer names."""
    try:
        cfg = read_live_config(model_dir)
    except RepositoryError:
        return
    if cfg is None:
        return
    used = {o.label_filename for o in cfg.output}
    for n in _names(model_dir):
        if _LABELS_RE.fullmatch(n) and n not in used:
            (model_dir / n).unlink(missing_ok=True)


def _text_sha(text: str) -> str:
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


def _tree_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder``, never following a symlink."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder, followlinks=False):
        for f in files:
            st = _lstat(Path(dirpath) / f)
            if st is not None and stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def version_status(model_dir: Path, version: int, named: list[int]) -> str:
    """``served``, ``not served (version policy)`` or ``unpublished (no config names it)``."""
    if version in named:
        return "served"
    if not named or version > max(named):
        return "unpublished (no config names it)"
    return "not served (version policy)"


def list_models(repository: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Models and versions with platform, size, max batch, metrics, creation time and status.

    Nothing is followed out of the repository: a symlinked model or version folder is listed with
    its status and never walked; manifests and configs are read only when they are regular files.
    """
    repository = Path(repository)
    if not repository.is_dir():
        raise RepositoryError(f"{repository}: repository not found; build one with 'make repo' or give --repository")
    rows: list[dict[str, Any]] = []

    def row(model: str, version: int | None, status: str, **kw: Any) -> None:
        rows.append({"model": model, "version": version, "platform": kw.get("platform", "?"),
                     "size_bytes": kw.get("size", 0), "max_batch_size": kw.get("max_batch"),
                     "metrics": kw.get("metrics", {}), "created": kw.get("created"), "status": status})

    for name in _names(repository):
        model_dir = repository / name
        st = _lstat(model_dir)
        if name.startswith(".") or st is None:
            continue
        if stat.S_ISLNK(st.st_mode):
            row(name, None, "model folder is a symlink: not followed; copy the model into the repository")
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        platform_name, max_batch, named = "?", None, []
        try:
            cfg = read_live_config(model_dir)
            if cfg is not None:
                platform_name, max_batch = cfg.platform or cfg.backend, cfg.max_batch_size
                named = named_versions(cfg, version_numbers(model_dir))
        except RepositoryError:
            platform_name = "unusable config"
        for n in _names(model_dir):
            if not _VERSION_RE.fullmatch(n):
                continue
            vdir = model_dir / n
            vst = _lstat(vdir)
            if vst is None or not stat.S_ISDIR(vst.st_mode):
                kind = "a symlink" if vst is not None and stat.S_ISLNK(vst.st_mode) else "not a folder"
                row(name, int(n), f"version entry is {kind}: not followed; replace it with a real folder or "
                    "remove it", platform=platform_name, max_batch=max_batch)
                continue
            manifest: dict[str, Any] = {}
            status = version_status(model_dir, int(n), named)
            try:
                manifest = read_manifest(vdir)
            except RepositoryError as exc:
                status += f"; {str(exc).split(': ', 1)[-1]}"
            row(name, int(n), status, platform=platform_name, max_batch=max_batch, size=_tree_size(vdir),
                metrics=manifest.get("checkpoint_metrics", {}) if isinstance(manifest.get("checkpoint_metrics"),
                                                                               dict) else {},
                created=manifest.get("created"))
    return rows


def verify_version(version_dir: str | os.PathLike[str]) -> list[str]:
    """What differs from the version's manifest (empty list = intact).

    Listed files that are missing, not regular, symlinked or changed, and entries the manifest
    does not list (e.g. a ``__pycache__`` a Python stub wrote) are all reported: nothing is
    ignored silently.
    """
    version_dir = Path(version_dir)
    try:
        manifest = read_manifest(version_dir)
    except RepositoryError as exc:
        return [f"{MANIFEST}: unusable ({str(exc).split(': ', 1)[-1]})"]
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return [f"{MANIFEST}: has no 'files' map"]
    bad = []
    for rel, sha in listed.items():
        p = version_dir / str(rel)
        st = _lstat(p)
        if not _safe_relative(str(rel)) or st is None or not stat.S_ISREG(st.st_mode) or sha256_of(p) != sha:
            bad.append(str(rel))
    for extra in unlisted_entries(version_dir, set(map(str, listed))):
        bad.append(f"{extra} (not in the manifest)")
    return bad


def _safe_relative(rel: str) -> bool:
    """A plain relative path inside a version folder: no absolute path, no '..', simple names."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(_FILE_RE.fullmatch(p) for p in parts)


def rollback(repository: str | os.PathLike[str], name: str, to: int) -> Published:
    """Serve an older version again by publishing a copy of it as a new version (history kept).

    Under the lock: the old version's manifest (a regular file), its config checksum, the config
    itself (parsed and validated like any publish) and every file's sha256 are checked; the copy
    is checked again against the manifest; the new live config pins the copy with the old
    version's own recorded config.
    """
    repository = Path(repository)
    check_model_name(name)
    src = repository / name / str(to)
    if not repository.is_dir():
        raise RepositoryError(f"{repository}: repository not found; give --repository")
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
        bad = [rel for rel in listed if not _safe_relative(rel)]
        if bad:
            raise RepositoryError(f"{src / MANIFEST}: lists file names outside the version folder {bad[:3]}; "
                                  "refusing to roll back to it")
        recorded_config(src, manifest)  # config_sha256 checked, config parsed
        changed = [c for c in verify_version(src) if not c.endswith("(not in the manifest)")]
        if changed:
            raise RepositoryError(f"{src}: files differ from the manifest ({', '.join(changed[:3])}); "
                                  "refusing to roll back to a modified version")
        _check_labels(spec)
        prov = {k: v for k, v in manifest.items() if k.startswith("checkpoint") or k in ("parity", "export")}
        prov["rolled_back_from"] = to
        files = {rel: src / rel for rel in listed}
        return _publish_locked(repository, name, files, config_text, spec, model_sha, prov, False,
                               expected=listed)


def prune(repository: str | os.PathLike[str], name: str, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` published versions.

    The live config is first rewritten (atomically, validated) to stop naming the doomed versions,
    then each is renamed to a trash name inside the model folder (same filesystem, a name Triton
    ignores) and deleted. Unpublished leftovers of killed publishes are not counted and not touched.
    """
    if keep < 1:
        raise UsageError(f"--keep {keep}: keep at least 1 version")
    repository = Path(repository)
    check_model_name(name)
    model_dir = repository / name
    if not _is_real_dir(model_dir):
        raise RepositoryError(f"{model_dir}: no such model folder; see 'tritonkit repo list'")
    with repository_lock(repository):
        _clean_stale(repository, model_dir)
        live = read_live_config(model_dir)
        versions = version_numbers(model_dir)
        named = named_versions(live, versions)
        published = [v for v in versions if not named or v <= max(named)] if live is not None else versions
        doomed = published[:-keep]
        still = [v for v in named if v not in doomed]
        if live is not None and still != named:
            text = _pinned(live, still)
            _validate_config_only(repository, model_dir, text, set(still))
            try:
                atomic_write_bytes(model_dir / CONFIG, text.encode())
            except OSError as exc:
                raise RepositoryError(f"{model_dir / CONFIG}: cannot rewrite the config to drop versions {doomed} "
                                      f"({exc.strerror}); nothing was removed. Fix permissions and retry") from None
        removed: list[int] = []
        for v in doomed:
            trash = model_dir / f"{TRASH_PREFIX}{v}-{os.urandom(6).hex()[:8]}"
            try:
                os.rename(model_dir / str(v), trash)
            except OSError as exc:
                raise RepositoryError(
                    f"{model_dir / str(v)}: pruning stopped ({exc.strerror}) after removing versions "
                    f"{removed or 'none'}; fix permissions on {model_dir} and run it again") from None
            removed.append(v)
            shutil.rmtree(trash, ignore_errors=True)
        if doomed:
            fsync_path(model_dir)
    return doomed


def live_labels(model_dir: str | os.PathLike[str]) -> list[str]:
    """The labels the live config serves (its first output's content-addressed label file), or []."""
    model_dir = Path(model_dir)
    cfg = read_live_config(model_dir)
    names = [o.label_filename for o in cfg.output if o.label_filename] if cfg is not None else []
    if not names or not _FILE_RE.fullmatch(names[0]):
        return []
    return _read_text(model_dir / names[0], "label file", MAX_CONFIG_BYTES * 16).splitlines()
