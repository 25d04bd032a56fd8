"""What a published version records and how live configs relate to it: manifests, labels, policies.

Each version's ``manifest.json`` holds the exact config it must be served with (and its sha256),
the sha256 of every file and the checkpoint's provenance; the live ``config.pbtxt`` pins, with
``version_policy: specific``, only versions whose recorded config equals it. These helpers read
and check those records; they never write the repository.
"""

from __future__ import annotations

import json
import os
import platform
import re
import stat
from pathlib import Path
from typing import Any

from contract.errors import RepositoryError, UsageError
from contract.fileio import sha256_of, sha256_text
from contract.spec import ModelSpec
from toolkit.repository.config import config_to_text, parse_config
from toolkit.repository.storage import (
    CONFIG,
    FILE_RE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    lstat,
    read_text,
    version_numbers,
)
from toolkit.repository.validate.manifest import named_versions, unlisted_entries

MANIFEST = "manifest.json"
LABELS_RE = re.compile(r"labels_[0-9a-f]{12}\.txt", re.ASCII)


def read_manifest(version_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The version's manifest, read safely; RepositoryError (one line) when unusable."""
    path = Path(version_dir) / MANIFEST
    text = read_text(path, "manifest", MAX_MANIFEST_BYTES)
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
    if lstat(path) is None:
        return None
    return parse_config(read_text(path, "config", MAX_CONFIG_BYTES), str(path))


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
    if sha256_text(text) != want:
        raise RepositoryError(f"{where}: the recorded config does not match its config_sha256 (the manifest was "
                              "modified after publishing); refusing to use this version")
    return parse_config(text, f"{where} (recorded config)")


def labels_filename(labels: tuple[str, ...] | list[str]) -> str:
    """Content-addressed label file name: a new config never changes the labels an old one names."""
    return f"labels_{sha256_text(''.join(f'{label}{chr(10)}' for label in labels))[:12]}.txt"


def with_label_file(config_text: str, spec: ModelSpec, where: str) -> str:
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


def check_labels(spec: ModelSpec) -> None:
    """One single-line label per class, or none: anything else shifts classes in the label file."""
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


def live_state(model_dir: Path) -> tuple[Any, list[int]]:
    """(live config or None, versions it names). An unusable live config names nothing."""
    try:
        cfg = read_live_config(model_dir)
    except RepositoryError:
        return None, []
    return cfg, named_versions(cfg, version_numbers(model_dir))


def compatible_versions(model_dir: Path, requested: Any, new_version: int, named: list[int]) -> list[int]:
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


def pinned_config(requested: Any, versions: list[int]) -> str:
    """``requested`` as text with ``version_policy: specific`` naming exactly ``versions``."""
    cfg = type(requested)()
    cfg.CopyFrom(requested)
    cfg.ClearField("version_policy")
    cfg.version_policy.specific.versions.extend(versions)
    return config_to_text(cfg)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that made a version, recorded in its manifest for provenance."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "onnx", "onnxruntime", "tritonclient", "nvidia-pytriton", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def version_status(model_dir: Path, version: int, named: list[int]) -> str:
    """``served``, ``not served (version policy)`` or ``unpublished (no config names it)``."""
    if version in named:
        return "served"
    if not named or version > max(named):
        return "unpublished (no config names it)"
    return "not served (version policy)"


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
        st = lstat(p)
        if not safe_relative(str(rel)) or st is None or not stat.S_ISREG(st.st_mode) or sha256_of(p) != sha:
            bad.append(str(rel))
    for extra in unlisted_entries(version_dir, set(map(str, listed))):
        bad.append(f"{extra} (not in the manifest)")
    return bad


def safe_relative(rel: str) -> bool:
    """A plain relative path inside a version folder: no absolute path, no '..', simple names."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(FILE_RE.fullmatch(p) for p in parts)


def live_labels(model_dir: str | os.PathLike[str]) -> list[str]:
    """The labels the live config serves (its first output's content-addressed label file), or []."""
    model_dir = Path(model_dir)
    cfg = read_live_config(model_dir)
    names = [o.label_filename for o in cfg.output if o.label_filename] if cfg is not None else []
    if not names or not FILE_RE.fullmatch(names[0]):
        return []
    return read_text(model_dir / names[0], "label file", MAX_CONFIG_BYTES * 16).splitlines()


