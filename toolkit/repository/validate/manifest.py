"""Manifest rules: a tritonkit version is exactly what it was published as, served with its own config.

Why: ``repo validate`` said "clean" for a version whose weights were zeroed after publishing, and a
``__pycache__`` a Python stub wrote into a version went unnoticed. Where a version holds a
``manifest.json`` (tritonkit writes one), every listed file's sha256 is checked, entries it does not
list are flagged, its recorded config must match its ``config_sha256``, and a version the live config
names must be served with the config it recorded (only ``version_policy`` may differ).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from contract.fileio import sha256_of_regular, sha256_text
from toolkit.repository.validate import fs
from toolkit.repository.validate.config import CONFIG
from toolkit.repository.validate.problem import Context

MANIFEST = "manifest.json"
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)
_REPUBLISH = "restore the version from a backup or publish it again with tritonkit repo add (a new version)"


def named_versions(cfg: Any, present: list[int]) -> list[int]:
    """Versions the config makes Triton load among ``present`` (Triton's version_policy rules); [] for no config."""
    if cfg is None:
        return []
    choice = cfg.version_policy.WhichOneof("policy_choice")
    if choice == "specific":
        return sorted(set(cfg.version_policy.specific.versions))
    if choice == "all":
        return sorted(present)
    n = cfg.version_policy.latest.num_versions if choice == "latest" else 1
    return sorted(present)[-max(n, 1):]


def recorded_config_of(vdir: Path) -> Any:
    """The config a tritonkit version recorded (checksum matching), or None when there is none to trust."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    text, _ = fs.read_text(vdir / MANIFEST, 64 * 1024 * 1024) if not os.path.islink(vdir / MANIFEST) else (None, "")
    try:
        data = json.loads(text) if text is not None else None
        recorded = data.get("config") if isinstance(data, dict) else None
        if not isinstance(recorded, str) or sha256_text(recorded) != data.get("config_sha256"):
            return None
        return text_format.Parse(recorded, mc.ModelConfig())
    except Exception:  # noqa: BLE001 - a broken manifest is reported by check_manifests
        return None


def unlisted_entries(vdir: Path, listed: set[str]) -> list[str]:
    """Entries of a version folder its manifest does not list (walked without following links)."""
    needed = {"/".join(r.split("/")[:i]) for r in listed for i in range(1, r.count("/") + 1)}
    out = []
    for dirpath, dirs, files in os.walk(vdir, followlinks=False):
        base = Path(dirpath).relative_to(vdir).as_posix()
        for n in sorted(dirs + files):
            rel = n if base == "." else f"{base}/{n}"
            if rel != MANIFEST and rel not in listed and rel not in needed:
                out.append(rel + ("/" if n in dirs else ""))
        dirs[:] = [d for d in dirs if (d if base == "." else f"{base}/{d}") in needed]
    return out


def _extra_fix(entry: str) -> str:
    if entry.rstrip("/").split("/")[-1] == "__pycache__" or entry.endswith(".pyc"):
        return ("a Python backend stub wrote bytecode into the published version (Triton then reloads it); "
                "delete it and start Triton with PYTHONDONTWRITEBYTECODE=1 (tritonkit serve does)")
    return "delete it, or publish a new version that includes it (tritonkit repo add)"


def check_manifests(ctx: Context, cfg: Any, versions: list[tuple[int, Path]], *, checksums: bool) -> None:
    """Integrity of every version that has a manifest, and agreement with the live config."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    present = [v for v, _ in versions]
    named = named_versions(cfg, present) if cfg is not None else []
    pinned = cfg is not None and cfg.version_policy.WhichOneof("policy_choice") == "specific"
    for v, vdir in versions:
        mpath = vdir / MANIFEST
        if fs.kind(mpath) == "missing" and not os.path.lexists(mpath):
            continue  # not a tritonkit version: nothing recorded to check against
        rel = f"{v}/{MANIFEST}"
        if os.path.islink(mpath):
            ctx.error(rel, "manifest", "is a symlink", _REPUBLISH)
            continue
        text, why = fs.read_text(mpath, 64 * 1024 * 1024)
        if text is None:
            ctx.error(rel, "manifest", why or "cannot be read", _REPUBLISH)
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            ctx.error(rel, "manifest", f"is not JSON ({str(exc)[:80]})", _REPUBLISH)
            continue
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            ctx.error(rel, "manifest", "has no 'files' map", _REPUBLISH)
            continue
        listed = {str(k): v_ for k, v_ in data["files"].items()}
        if checksums:
            for name, want in sorted(listed.items()):
                if not all(_SAFE.fullmatch(p) for p in name.split("/")):
                    ctx.error(rel, "files", f"lists {name!r}, a path outside the version folder", _REPUBLISH)
                    continue
                got = sha256_of_regular(vdir / name, follow_symlinks=False)
                if got is None:
                    ctx.error(f"{v}/{name}", "sha256", "is missing, a symlink or not a regular file, but the "
                              "manifest lists it", _REPUBLISH)
                elif got != want:
                    ctx.error(f"{v}/{name}", "sha256", f"differs from the manifest (sha256 {got[:12]}..., recorded "
                              f"{str(want)[:12]}...): the file was modified after publishing", _REPUBLISH)
        for extra in unlisted_entries(vdir, set(listed)):
            ctx.error(f"{v}/{extra}", "manifest", "is not listed in the version's manifest, so the published "
                      "version was modified", _extra_fix(extra))
        recorded = data.get("config")
        if not isinstance(recorded, str):
            continue
        if sha256_text(recorded) != data.get("config_sha256"):
            ctx.error(rel, "config_sha256", "the recorded config does not match its config_sha256 (the manifest "
                      "was modified)", _REPUBLISH)
            continue
        if cfg is None or v not in named:
            if pinned and named and v > max(named):
                ctx.warn(str(v), "version", f"version {v} is unpublished (no config names it): a publish was "
                         "interrupted before its config went live", f"remove folder {v}, or publish again "
                         "(the next version gets a higher number)")
            continue
        try:
            rec = text_format.Parse(recorded, mc.ModelConfig())
        except Exception as exc:  # noqa: BLE001 - the manifest's fault
            ctx.error(rel, "config", f"the recorded config does not parse ({str(exc)[:100]})", _REPUBLISH)
            continue
        live = mc.ModelConfig()
        live.CopyFrom(cfg)
        live.ClearField("version_policy")
        rec.ClearField("version_policy")
        if live != rec:
            ctx.error(CONFIG, "version_policy", f"names version {v}, but version {v} was published with another "
                      "config (its manifest records it), so Triton would serve it with the wrong batch size, "
                      "shapes or labels", f"pin the versions that share this config (version_policy: specific), "
                      f"or roll back with tritonkit repo rollback {ctx.name} --to {v}")
