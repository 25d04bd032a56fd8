"""Publishing into an ``s3://`` repository: atomic without rename, under a lease.

The protocol, per model (why: a polling Triton must never load a half-uploaded version, and the live
config must only name versions whose objects are complete and whose recorded config equals it):

1. Take the writer lease (:mod:`toolkit.repository.s3`): concurrent writers get distinct versions.
2. Versions being replaced (``push --force`` only) are first dropped from the live config, then deleted.
3. A model new to the bucket first gets a *hold* config (``version_policy: specific {}``: names no
   version), so Triton's auto-complete never loads a version before its config exists.
4. The version's objects are uploaded (``manifest.json`` last), each with its sha256 as S3 checksum,
   then verified: exactly the manifest's files, each checksum equal to the manifest's.
5. Content-addressed label files go up (an existing one already holds the same text).
6. The lease is checked to be still ours and ``config.pbtxt`` naming the new set is written last (in a
   later second than every other object of the model, so a polling Triton notices it).
7. Only then are versions and label files the new config no longer names deleted.

A kill at any point leaves the old config naming only complete versions; the leftovers of a killed
writer are never named (their number is never reused) and are listed as unpublished.

``repo add``/``rollback``/``prune`` on a URL run the local code, with all its validation, on a
*working copy* (configs, labels, manifests, and the files of the versions the operation reads),
then publish the difference with this protocol. ``repo validate`` and ``repo list`` read the bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from contract.errors import RepositoryError, TritonkitError
from toolkit.repository.s3 import LEASE, Lease, S3Storage, fault, storage_for
from toolkit.repository.storage import (
    ANY_NUMBER_RE,
    CONFIG,
    FILE_RE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    VERSION_RE,
)

MANIFEST = "manifest.json"
LATEST = -1  # in a working copy's ``full`` set: the newest version the live config names
T = TypeVar("T")


@dataclass
class Transfer:
    """What a push, pull or publish moved: files and bytes, and what it found already in place."""

    uploaded: int = 0
    downloaded: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes: int = 0
    versions: list[str] = field(default_factory=list)  # "model/N" made or replaced
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"uploaded": self.uploaded, "downloaded": self.downloaded, "skipped": self.skipped,
                "deleted": self.deleted, "bytes": self.bytes, "versions": self.versions, "notes": self.notes}


@dataclass
class ModelPlan:
    """What to change in one remote model, in protocol order."""

    model: str
    withdraw: list[int] = field(default_factory=list)  # remote versions replaced: unnamed + deleted first
    versions: dict[int, Path] = field(default_factory=dict)  # version -> complete local folder to upload
    labels: list[Path] = field(default_factory=list)
    config: str | None = None  # written last (None: unchanged)
    delete_versions: list[int] = field(default_factory=list)
    delete_labels: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.withdraw or self.versions or self.labels or self.config is not None or self.delete_versions
                    or self.delete_labels)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def local_manifest_files(version_dir: Path) -> dict[str, str]:
    """The manifest's file -> sha256 map of a local version; RepositoryError when unusable."""
    try:
        data = json.loads((version_dir / MANIFEST).read_text())
        files = {str(k): str(v) for k, v in dict(data["files"]).items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RepositoryError(f"{version_dir / MANIFEST}: unusable manifest ({exc}); publish this version with "
                              "'tritonkit repo add' so it has one") from None
    return files


def hold_config(text: str) -> str:
    """``text`` with ``version_policy: specific {}``: Triton loads no version under it."""
    from toolkit.repository.config import config_to_text, parse_config

    cfg = parse_config(text, "config to hold")
    cfg.ClearField("version_policy")
    cfg.version_policy.specific.SetInParent()
    return config_to_text(cfg)


def is_hold_config(text: str | None) -> bool:
    """A config a killed publish left: ``version_policy: specific`` naming no version. Triton refuses to
    load it ("at least one version must be available"), so a server (re)starting with --exit-on-error fails
    while it is there."""
    if text is None:
        return False
    from toolkit.repository.config import parse_config

    try:
        cfg = parse_config(text, "live config")
    except TritonkitError:
        return False
    return cfg.version_policy.WhichOneof("policy_choice") == "specific" and not cfg.version_policy.specific.versions


def sweep_held(storage: S3Storage, lease: Lease, out: Transfer) -> None:
    """Under the lease (so no writer is mid-publish): remove every model a killed publish left held,
    config first, then its objects, none of which any config names."""
    for model in storage.model_names():
        if not is_hold_config(remote_config(storage, model)):
            continue
        lease.check()
        keys = [o.key for o in storage.list(model)]
        config_key = f"{model}/{CONFIG}"
        out.deleted += storage.delete([config_key])
        out.deleted += storage.delete([k for k in keys if k != config_key])
        out.notes.append(f"{model}: removed what a killed publish left (a config naming no version, "
                         f"{len(keys) - 1} objects)")


def _pin_live(storage: S3Storage, model: str, current: str, present: list[int], lease: Lease) -> None:
    """A live config that does not name its versions (``latest``/``all``, e.g. a hand-made folder pushed)
    would let a polling Triton load a version while its objects go up: pin what it serves now first."""
    from toolkit.repository.config import parse_config
    from toolkit.repository.manifest import pinned_config

    cfg = parse_config(current, "live config")
    named = named_in(current, present)
    if cfg.version_policy.WhichOneof("policy_choice") != "specific" and named:
        lease.check()
        storage.write_config(model, pinned_config(cfg, named))


def named_in(text: str | None, versions: list[int]) -> list[int]:
    """Versions a config text names among ``versions`` (Triton's policy rules); [] for none/unusable."""
    if text is None:
        return []
    from toolkit.repository.config import parse_config
    from toolkit.repository.validate.manifest import named_versions

    try:
        return named_versions(parse_config(text, "live config"), versions)
    except TritonkitError:
        return []


def remote_config(storage: S3Storage, model: str) -> str | None:
    if storage.exists(f"{model}/{CONFIG}") is None:
        return None
    return storage.read_text(f"{model}/{CONFIG}", "config", MAX_CONFIG_BYTES)


def verify_remote_version(storage: S3Storage, model: str, version: int, files: dict[str, str] | None = None,
                          listing: set[str] | None = None) -> list[str]:
    """What differs between a remote version's objects and its manifest (empty = complete and intact).

    Checks by S3's stored sha256 (no download): every listed file present with the manifest's sha256,
    no object the manifest does not list.
    """
    base = f"{model}/{version}"
    keys = listing if listing is not None else {o.key for o in storage.list(base)}
    keys = {k for k in keys if k.startswith(base + "/")}
    if files is None:
        if f"{base}/{MANIFEST}" not in keys:
            return [f"{MANIFEST}: missing"]
        try:
            data = json.loads(storage.get_bytes(f"{base}/{MANIFEST}", "manifest", MAX_MANIFEST_BYTES))
            files = {str(k): str(v) for k, v in dict(data["files"]).items()}
        except (ValueError, KeyError, TypeError):
            return [f"{MANIFEST}: unusable"]
    bad = []
    for rel, sha in files.items():
        key = f"{base}/{rel}"
        if key not in keys:
            bad.append(f"{rel} (missing)")
        elif storage.object_sha256(key) != sha:
            bad.append(f"{rel} (sha256 differs from the manifest)")
    for key in sorted(keys - {f"{base}/{rel}" for rel in files} - {f"{base}/{MANIFEST}"}):
        bad.append(f"{key[len(base) + 1:]} (not in the manifest)")
    return bad


def apply_plan(storage: S3Storage, plan: ModelPlan, lease: Lease, out: Transfer) -> None:
    """Make ``plan`` live in protocol order (module docstring); the caller holds ``lease``."""
    model = plan.model
    listing = {o.key: o for o in storage.list(model)}
    current = remote_config(storage, model)
    present = sorted({int(k.split("/")[1]) for k in listing if VERSION_RE.fullmatch(k.split("/")[1])})
    if plan.withdraw:
        named = named_in(current, present)
        if current is not None and set(named) & set(plan.withdraw):
            from toolkit.repository.config import parse_config
            from toolkit.repository.manifest import pinned_config

            lease.check()
            storage.write_config(model, pinned_config(parse_config(current, "live config"),
                                                      [v for v in named if v not in plan.withdraw]))
        for v in plan.withdraw:
            doomed = [k for k in listing if k.startswith(f"{model}/{v}/")]
            out.deleted += storage.delete(doomed)
            for k in doomed:
                listing.pop(k)
        current = remote_config(storage, model)
        present = [v for v in present if v not in plan.withdraw]
    held = current is None and plan.config is not None and bool(plan.versions)
    if held:
        storage.write_config(model, hold_config(plan.config))
        fault("s3_hold_config")
    elif current is not None and plan.versions:
        _pin_live(storage, model, current, present, lease)
    try:
        _upload_versions(storage, plan, listing, out)
    except BaseException:
        if held:  # a model nothing serves yet: leave no hold config behind (a kill is swept by the next writer)
            try:
                storage.delete([f"{model}/{CONFIG}"])
            except Exception:  # noqa: BLE001 - the original error matters more; the next writer sweeps it
                pass
        raise
    for label in plan.labels:
        key = f"{model}/{label.name}"
        if key in listing and storage.object_sha256(key) == _sha256(label):
            out.skipped += 1
            continue
        out.bytes += storage.put_file(key, label)
        out.uploaded += 1
    fault("s3_labels")
    if plan.config is not None:
        lease.check()
        storage.write_config(model, plan.config)
        out.uploaded += 1
    fault("s3_config_written")
    doomed = [k for k in listing for v in plan.delete_versions if k.startswith(f"{model}/{v}/")]
    doomed += [f"{model}/{name}" for name in plan.delete_labels if f"{model}/{name}" in listing]
    if doomed:
        out.deleted += storage.delete(doomed)


def _upload_versions(storage: S3Storage, plan: ModelPlan, listing: dict[str, Any], out: Transfer) -> None:
    """Every version's objects (the manifest last), each verified against the manifest afterwards."""
    model = plan.model
    first = True
    for version, folder in sorted(plan.versions.items()):
        files = local_manifest_files(folder)
        base = f"{model}/{version}"
        sent = out.uploaded
        for rel in [*sorted(files), MANIFEST]:  # the manifest last
            key = f"{base}/{rel}"
            sha = files.get(rel) or _sha256(folder / rel)
            if key in listing and storage.object_sha256(key) == sha:
                out.skipped += 1
                continue
            if _sha256(folder / rel) != sha:
                raise RepositoryError(f"{folder / rel}: its sha256 differs from the manifest (modified after "
                                      "publishing); nothing of it was made live. Publish it again")
            out.bytes += storage.put_file(key, folder / rel, sha)
            out.uploaded += 1
            if first:
                first = False
                fault("s3_first_object")
        fault("s3_objects_uploaded")
        problems = verify_remote_version(storage, model, version, files)
        if problems:
            raise RepositoryError(f"{storage.url}/{base}: the uploaded version does not match its manifest "
                                  f"({', '.join(problems[:3])}); no config names it. Run the command again")
        if out.uploaded > sent:
            out.versions.append(base)
    fault("s3_verified")
    fault("s3_deleted")


# -- working copies -----------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def fetch_version(storage: S3Storage, model: str, version: int, dest: Path, files: dict[str, str],
                  out: Transfer) -> None:
    """Download a version's listed files into ``dest``, each checked against the manifest's sha256.

    The names come from a manifest in the bucket, which whoever can write the bucket wrote: each must be a
    plain relative path of file names (no ``..``, no absolute path, no empty or hidden segment), so nothing
    lands outside ``dest``."""
    for rel in files:
        parts = str(rel).split("/")
        if not all(FILE_RE.fullmatch(p) for p in parts):
            raise RepositoryError(f"{storage.url}/{model}/{version}/manifest.json lists {str(rel)[:80]!r}, which is "
                                  "not a plain relative file name inside the version; refusing the version (nothing "
                                  "was written outside it). Republish it with tritonkit")
    for rel, sha in files.items():
        data = storage.get_bytes(f"{model}/{version}/{rel}", f"file {rel} of version {version}")
        if hashlib.sha256(data).hexdigest() != sha:
            raise RepositoryError(f"{storage.url}/{model}/{version}/{rel}: its sha256 differs from the version's "
                                  "manifest (modified or truncated in the bucket); refusing to use it. Republish "
                                  "the version or remove it")
        _write(dest / rel, data)
        out.downloaded += 1
        out.bytes += len(data)


def make_working_copy(storage: S3Storage, dest: Path, full: dict[str, set[int]]) -> dict[str, Any]:
    """Copy what local publishing reads into ``dest``: every model's config and labels, every version's
    manifest (a folder for every numeric name, so no number is reused), and the files of the versions
    ``full`` names per model (:data:`LATEST`: the newest named one).

    Returns the remote state: model -> {"config": text|None, "versions": [...]}.
    """
    out = Transfer()
    listing = storage.list()
    state: dict[str, Any] = {}
    by_model: dict[str, list[str]] = {}
    for o in listing:
        parts = o.key.split("/")
        if len(parts) < 2 or parts[0].startswith("."):
            continue
        by_model.setdefault(parts[0], []).append(o.key)
    dest.mkdir(parents=True, exist_ok=True)
    for model, keys in by_model.items():
        mdir = dest / model
        config = None
        numbers: set[str] = set()
        for key in keys:
            parts = key.split("/")
            if len(parts) == 2 and (parts[1] == CONFIG or parts[1].startswith("labels_")):
                data = storage.get_bytes(key, parts[1], MAX_CONFIG_BYTES * 16)
                _write(mdir / parts[1], data)
                if parts[1] == CONFIG:
                    config = data.decode(errors="replace")
            elif len(parts) >= 3 and ANY_NUMBER_RE.fullmatch(parts[1]):
                numbers.add(parts[1])
        versions = sorted(int(n) for n in numbers if VERSION_RE.fullmatch(n))
        for n in numbers:
            (mdir / n).mkdir(parents=True, exist_ok=True)
            if f"{model}/{n}/{MANIFEST}" in keys:
                _write(mdir / n / MANIFEST, storage.get_bytes(f"{model}/{n}/{MANIFEST}", "manifest",
                                                              MAX_MANIFEST_BYTES))
        wanted = set(full.get(model, set()))
        if LATEST in wanted:
            named = named_in(config, versions)
            wanted = (wanted - {LATEST}) | ({max(named)} if named else set())
        for v in sorted(wanted):
            if str(v) in numbers and (mdir / str(v) / MANIFEST).exists():
                try:
                    files = local_manifest_files(mdir / str(v))
                except RepositoryError:
                    continue
                fetch_version(storage, model, v, mdir / str(v), files, out)
        state[model] = {"config": config, "versions": versions}
    return state


def snapshot(model_dir: Path) -> dict[str, str]:
    """Every regular file of a working-copy model folder (dot-names skipped) -> sha256; version folders as
    ``N/`` -> ''."""
    out: dict[str, str] = {}
    if not model_dir.is_dir():
        return out
    for entry in sorted(os.listdir(model_dir)):
        if entry.startswith("."):
            continue
        p = model_dir / entry
        if p.is_dir() and ANY_NUMBER_RE.fullmatch(entry):
            out[f"{entry}/"] = ""
            for dirpath, _dirs, names in os.walk(p):
                for name in names:
                    f = Path(dirpath) / name
                    out[str(f.relative_to(model_dir))] = _sha256(f)
        elif p.is_file():
            out[entry] = _sha256(p)
    return out


def plan_from(model: str, model_dir: Path, before: dict[str, str], after: dict[str, str]) -> ModelPlan:
    """The remote changes that make a working-copy model go from ``before`` to ``after``."""
    plan = ModelPlan(model)
    for key in after:
        if key.endswith("/") and after.get(key) == "" and key not in before:
            plan.versions[int(key[:-1])] = model_dir / key[:-1]
    for key, sha in after.items():
        top = key.split("/", 1)
        if len(top) == 2 and top[1] and before.get(key) != sha and VERSION_RE.fullmatch(top[0]):
            plan.versions.setdefault(int(top[0]), model_dir / top[0])
    plan.versions = {v: p for v, p in plan.versions.items() if (p / MANIFEST).is_file()}
    plan.delete_versions = sorted(int(k[:-1]) for k in before if k.endswith("/") and k not in after
                                  and VERSION_RE.fullmatch(k[:-1]))
    plan.labels = [model_dir / k for k in after
                   if "/" not in k and k.startswith("labels_") and before.get(k) != after[k]]
    plan.delete_labels = [k for k in before if "/" not in k and k.startswith("labels_") and k not in after]
    if after.get(CONFIG) != before.get(CONFIG) and CONFIG in after:
        plan.config = (model_dir / CONFIG).read_text()
    return plan


@contextmanager
def working_session(url: str, full: dict[str, set[int]]) -> Iterator[Path]:
    """Under the lease: a working copy of the repository (see :func:`make_working_copy`); on a clean exit,
    every model's difference is published with the protocol. Errors name the URL, not the temp folder."""
    storage = storage_for(url)
    tmp = Path(tempfile.mkdtemp(prefix="tritonkit-s3-"))
    work = tmp / "repo"
    try:
        with storage.lease() as lease:
            fault("s3_leased")
            sweep_held(storage, lease, Transfer())
            make_working_copy(storage, work, full)
            before = {m: snapshot(work / m) for m in os.listdir(work) if not m.startswith(".")}
            fault("s3_pulled")
            try:
                yield work
            except TritonkitError as exc:
                raise type(exc)(str(exc).replace(str(work), str(storage.url))) from None
            fault("s3_staged")
            out = Transfer()
            for m in sorted(os.listdir(work)):
                if m.startswith(".") or not (work / m).is_dir():
                    continue
                plan = plan_from(m, work / m, before.get(m, {}), snapshot(work / m))
                if not plan.empty():
                    apply_plan(storage, plan, lease, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def on_working_copy(url: str, full: dict[str, set[int]], fn: Callable[[Path], T]) -> T:
    """``fn(working copy)`` under the lease, then its changes published; paths in the result become URLs."""
    with working_session(url, full) as work:
        result = fn(work)
    return _as_remote(result, work, url)


def _as_remote(value: Any, work: Path, url: str) -> Any:
    from toolkit.repository.publish import Published

    if isinstance(value, list):
        return [_as_remote(v, work, url) for v in value]
    if isinstance(value, Published):
        return replace(value, path=RemotePath(str(value.path).replace(str(work), str(storage_for(url).url))))
    return value


class RemotePath(str):
    """An object-storage location where a Path is expected: it prints as the URL."""

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]


# -- reading the bucket -------------------------------------------------------------------------------
def list_remote(url: str) -> list[dict[str, Any]]:
    """``repo list`` of a bucket: the rows :func:`toolkit.repository.versions.list_models` gives a folder."""
    from toolkit.repository.config import parse_config
    from toolkit.repository.manifest import configs_agree, version_status

    storage = storage_for(url)
    storage.check_bucket()
    listing = storage.list()
    models: dict[str, dict[str, Any]] = {}
    for o in listing:
        parts = o.key.split("/")
        if len(parts) < 2 or parts[0].startswith("."):
            continue
        m = models.setdefault(parts[0], {"versions": {}, "config": False})
        if len(parts) == 2 and parts[1] == CONFIG:
            m["config"] = True
        elif len(parts) >= 3 and VERSION_RE.fullmatch(parts[1]):
            v = m["versions"].setdefault(int(parts[1]), {"size": 0, "keys": set()})
            v["size"] += o.size
            v["keys"].add(o.key)
    rows: list[dict[str, Any]] = []
    for name in sorted(models):
        m = models[name]
        platform_name, max_batch, named, problem, live = "?", None, [], "", None
        if m["config"]:
            try:
                live = parse_config(storage.read_text(f"{name}/{CONFIG}", "config", MAX_CONFIG_BYTES),
                                    f"{url}/{name}/{CONFIG}")
                platform_name, max_batch = live.platform or live.backend, live.max_batch_size
                named = named_in(storage.read_text(f"{name}/{CONFIG}", "config", MAX_CONFIG_BYTES),
                                 sorted(m["versions"]))
            except TritonkitError as exc:
                platform_name, problem = "unusable config", str(exc).split(": ", 1)[-1]
        for v in sorted(m["versions"]):
            info = m["versions"][v]
            status = (f"not served: the live config is unusable ({problem})" if problem
                      else version_status(Path(name), v, named))
            if named and v == max(named):
                status += " (default version)"
            manifest: dict[str, Any] = {}
            own_platform, own_batch = platform_name, max_batch
            try:
                manifest = json.loads(storage.get_bytes(f"{name}/{v}/{MANIFEST}", "manifest", MAX_MANIFEST_BYTES))
                files = {str(k) for k in dict(manifest.get("files", {}))}
                missing = [f for f in files if f"{name}/{v}/{f}" not in info["keys"]]
                if missing:
                    status += f"; incomplete: {len(missing)} of {len(files)} files missing"
                if isinstance(manifest.get("config"), str):
                    own = parse_config(manifest["config"], f"{url}/{name}/{v}/{MANIFEST}")
                    own_platform, own_batch = own.platform or own.backend, own.max_batch_size
                    if live is not None and v in named and not configs_agree(own, live):
                        status += "; its recorded config differs from the live one"
            except (TritonkitError, ValueError, TypeError, AttributeError) as exc:
                status += f"; manifest unusable ({str(exc).split(': ', 1)[-1]})"
            metrics = {}
            for source in (manifest, manifest.get("export")):
                if isinstance(source, dict) and isinstance(source.get("checkpoint_metrics"), dict):
                    metrics = source["checkpoint_metrics"]
                    break
            rows.append({"model": name, "version": v, "platform": own_platform, "size_bytes": info["size"],
                         "max_batch_size": own_batch, "metrics": metrics, "created": manifest.get("created"),
                         "status": status})
    return rows


@contextmanager
def mirror(url: str) -> Iterator[Path]:
    """Every object of the repository (the lease excepted) downloaded as is into a temp folder."""
    storage = storage_for(url)
    storage.check_bucket()
    tmp = Path(tempfile.mkdtemp(prefix="tritonkit-s3-mirror-"))
    root = tmp / "repo"
    root.mkdir()
    try:
        for o in storage.list():
            if o.key == LEASE or o.key.endswith("/") or any(p in ("", ".", "..") for p in o.key.split("/")):
                continue
            _write(root / o.key, storage.get_bytes(o.key, "object"))
        yield root
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
