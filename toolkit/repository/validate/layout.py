"""Folder rules: names, platform/backend, version folders, and the model file each version needs."""

from __future__ import annotations

import ast
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.repository.validate import fs
from toolkit.repository.validate.artifacts import Artifact, external_data_locations, read_onnx
from toolkit.repository.validate.config import CONFIG, VERSION_RE, Entry
from toolkit.repository.validate.problem import Context

PLATFORM_BACKEND = {
    "tensorrt_plan": "tensorrt",
    "onnxruntime_onnx": "onnxruntime",
    "pytorch_libtorch": "pytorch",
    "tensorflow_graphdef": "tensorflow",
    "tensorflow_savedmodel": "tensorflow",
    "ensemble": None,
}
BACKEND_KIND = {
    "tensorrt": "tensorrt_plan",
    "onnxruntime": "onnxruntime_onnx",
    "pytorch": "pytorch_libtorch",
    "tensorflow": "tensorflow_savedmodel",
    "openvino": "openvino",
    "python": "python",
}
KNOWN_BACKENDS = set(BACKEND_KIND) | {"fil", "dali", "vllm", "tensorrtllm", "identity", "repeat", "square"}
DEFAULT_FILE = {
    "tensorrt_plan": "model.plan",
    "onnxruntime_onnx": "model.onnx",
    "pytorch_libtorch": "model.pt",
    "tensorflow_savedmodel": "model.savedmodel",
    "tensorflow_graphdef": "model.graphdef",
    "openvino": "model.xml",
    "python": "model.py",
}
# Backends Triton knows by type, with the platforms each accepts (the first is its default).
TYPED_BACKENDS = {
    "tensorrt": ("tensorrt_plan",),
    "onnxruntime": ("onnxruntime_onnx",),
    "pytorch": ("pytorch_libtorch",),
    "tensorflow": ("tensorflow_savedmodel", "tensorflow_graphdef"),
}
# What Triton's auto-complete infers from a model file, in the order it looks (kind, backend).
INFERRED = [("tensorflow_graphdef", "tensorflow"), ("tensorflow_savedmodel", "tensorflow"),
            ("tensorrt_plan", "tensorrt"), ("onnxruntime_onnx", "onnxruntime"), ("openvino", "openvino"),
            ("pytorch_libtorch", "pytorch"), ("python", "python")]
DIR_OK = {"onnxruntime_onnx", "openvino", "python"}  # also inferred when the name is a folder
SPECIAL_FOLDERS = {"warmup", "configs", "initial_state"}
_CC = re.compile(r"\d+\.\d+")


@dataclass
class ModelFile:
    version: int
    path: Path
    rel: str  # relative to the model folder
    field: str  # config field that named it
    artifact: Artifact | None = None
    cc: str | None = None  # compute capability key from cc_model_filenames


def check_names(ctx: Context, entry: Entry, cfg: Any) -> None:
    """Folder name printable; config ``name`` (when set) a plain name equal to the folder's."""
    if not entry.name.isprintable():
        ctx.error("", "folder", "model folder name contains control or undecodable characters",
                  "rename the folder using letters, digits, '_', '-' and '.'")
    if cfg is None or not cfg.name:
        return
    name = cfg.name
    if "/" in name or "\\" in name or ".." in name.replace("\\", "/").split("/") or name in (".", ".."):
        ctx.error(CONFIG, "name", f"model name {name!r} is not a plain folder name (contains '/' or '..')",
                  "use letters, digits, '_', '-' and '.' only")
    elif not name.isprintable():
        ctx.error(CONFIG, "name", f"model name {name!r} contains control characters",
                  "use letters, digits, '_', '-' and '.' only")
    if name != entry.name:
        ctx.error(CONFIG, "name", f"name {name!r} differs from the folder name {entry.name!r}, so Triton "
                  "refuses the model", f"set name: \"{entry.name}\" or remove the name field")


def model_kind(ctx: Context, cfg: Any, model_dir: Path) -> str | None:
    """The platform kind (a DEFAULT_FILE key, ``ensemble``, or None for a custom backend).

    Follows Triton: the four backends it knows by type (tensorrt, onnxruntime, pytorch, tensorflow)
    take only their own platforms; any other backend (python, custom) ignores the platform; with
    neither set, Triton infers the backend from default_model_filename or the first version folder.
    """
    platform, backend = cfg.platform, cfg.backend
    if platform == "ensemble":
        if backend:
            ctx.error(CONFIG, "backend", f"an ensemble takes no backend (backend {backend!r} is set), so Triton "
                      "refuses it", "remove the backend line; platform: \"ensemble\" alone makes an ensemble")
        return "ensemble"
    if backend in TYPED_BACKENDS:
        platforms = TYPED_BACKENDS[backend]
        if platform and platform not in platforms:
            right = PLATFORM_BACKEND.get(platform)
            fix = (f"set backend: \"{right}\" or remove the backend line (Triton fills it from the platform)"
                   if right else f"set platform: \"{platforms[0]}\" or remove the platform line")
            ctx.error(CONFIG, "backend", f"backend {backend!r} does not serve platform {platform!r}", fix)
        if platform:
            return platform if platform in PLATFORM_BACKEND else None
        inferred = _infer(cfg, model_dir, backend)
        if inferred is None and len(platforms) > 1:
            ctx.error(CONFIG, "platform", f"backend {backend!r} needs a platform and no model file shows which",
                      f"set platform: \"{platforms[0]}\" or \"{platforms[1]}\"")
        return inferred or platforms[0]
    if backend:
        if platform:
            ctx.warn(CONFIG, "platform", f"platform {platform!r} is ignored: backend {backend!r} serves this model",
                     "remove the platform line")
        if backend not in KNOWN_BACKENDS:
            ctx.warn(CONFIG, "backend", f"backend {backend!r} is not one Triton ships",
                     f"check the server has backends/{backend}/ (a custom or Python-based backend), "
                     f"else use one of {', '.join(sorted(BACKEND_KIND))}")
            return None
        return BACKEND_KIND.get(backend)
    if platform:
        if platform not in PLATFORM_BACKEND:
            hint = f"set backend: \"{platform}\" instead" if platform in BACKEND_KIND else "set backend instead"
            ctx.error(CONFIG, "platform", f"unknown platform {platform!r}",
                      f"use one of {', '.join(PLATFORM_BACKEND)}, or {hint}")
            return None
        return platform
    kind = _infer(cfg, model_dir, None)
    # Triton's last resort: a model named "<anything>.<backend>".
    if kind is None and "." in ctx.name and not cfg.default_model_filename:
        guess = ctx.name.split(".", 1)[1]
        ctx.warn(CONFIG, "backend", f"neither platform nor backend is set, so Triton takes backend {guess!r} from "
                 "the model name", f"set backend: \"{guess}\" if that is meant, else the right backend")
        return None
    if kind is None:
        first = _first_folder(model_dir)
        where = (f"default_model_filename {cfg.default_model_filename!r}" if cfg.default_model_filename
                 else f"folder {first!r}, the first in name order and the only one it reads" if first
                 else "the model folder, which has no sub-folder")
        ctx.error(CONFIG, "platform", f"neither platform nor backend is set and Triton cannot infer one from "
                  f"{where}", f"set backend (backend: \"python\" for a model.py) or platform (one of "
                  f"{', '.join(p for p in PLATFORM_BACKEND if p != 'ensemble')})")
    return kind


def _first_folder(model_dir: Path) -> str | None:
    """The sub-folder Triton's auto-complete reads: the first by name, hidden ones included."""
    names, _ = fs.list_dir(model_dir)
    return min((n for n in names or [] if fs.kind(model_dir / n) == "dir"), default=None)


def _infer(cfg: Any, model_dir: Path, backend: str | None) -> str | None:
    """The kind Triton's auto-complete infers from default_model_filename, else from the first sub-folder
    (in name order, as Triton lists them) and the model files in it."""
    candidates = [k for k, b in INFERRED if backend in (None, b)]
    fname = cfg.default_model_filename
    if fname:
        return next((k for k in candidates if DEFAULT_FILE[k] == fname), None)
    name = _first_folder(model_dir)
    if name is None:
        return None
    first = model_dir / name
    for k in candidates:
        found = fs.kind(first / DEFAULT_FILE[k])
        wanted = {"dir"} if k == "tensorflow_savedmodel" else {"file", "dir"} if k in DIR_OK else {"file"}
        if found in wanted:
            return k
    return None


def check_versions(ctx: Context, entry: Entry, cfg: Any, base_real: str,
                   present: set[int] | None = None) -> list[tuple[int, Path]]:
    """Numeric version folders Triton will see; warnings for the ones it ignores."""
    names, why = fs.list_dir(entry.path)
    if names is None:
        ctx.error("", "folder", f"model folder {why}", "make the folder readable")
        return []
    versions: list[tuple[int, Path]] = []
    ignored: list[str] = []
    for n in names:
        if n == CONFIG:
            continue
        p = entry.path / n
        k = fs.kind(p)
        if VERSION_RE.fullmatch(n):
            if len(n) > 1 and n.startswith("0"):  # Triton loads a folder named 0 as version 0
                ignored.append(n)
                better = str(int(n)) if int(n) > 0 else "1"
                ctx.warn(n, "version", f"version folder {n!r} starts with 0, so Triton ignores it",
                         f"rename it to {better}")
                continue
            if k != "dir":
                ctx.error(n, "version", f"version {n!r} is not a folder ({k})",
                          "make each version a folder holding the model file")
                continue
            if not fs.inside(base_real, p):
                ctx.error(n, "version", "version folder resolves outside the model folder (symlink)",
                          "copy the version into the model folder instead of linking elsewhere")
                continue
            versions.append((int(n), p))
        elif k == "dir" and n.startswith((".tritonkit-staging-", ".tritonkit-trash-")):
            ctx.warn(n, "version", "a tritonkit staging or trash folder left by a killed publish or prune "
                     "(Triton ignores it)", "the next tritonkit repo add or prune removes it; or delete it")
        elif k == "dir" and n not in SPECIAL_FOLDERS:
            ignored.append(n)
            ctx.warn(n, "version", f"folder {n!r} is not a version number, so Triton ignores it",
                     "name version folders 1, 2, 3 (digits, no leading zero) or move it out")
    if not versions and not present:
        extra = f" (Triton ignores {', '.join(repr(i) for i in ignored)})" if ignored else ""
        ctx.error("", "versions", f"no version folder{extra}, so Triton has nothing to load",
                  "add a version folder named 1 holding the model file")
    versions.sort()
    policy = cfg.version_policy if cfg is not None else None
    if policy is not None and policy.WhichOneof("policy_choice") == "specific":
        have = {v for v, _ in versions}
        known = have | (present or set())
        report = ctx.warn if known & set(policy.specific.versions) else ctx.error  # Triton loads those it finds
        for want in policy.specific.versions:
            if want not in known:
                report(CONFIG, "version_policy", f"specific version {want} has no folder",
                       f"add folder {want} or list only {sorted(have) or 'existing versions'}")
    return versions


def model_files(ctx: Context, cfg: Any, kind: str | None, versions: list[tuple[int, Path]],
                base_real: str) -> list[ModelFile]:
    """Check each version holds the file its platform loads; parse what can be parsed offline."""
    out: list[ModelFile] = []
    for v, vdir in versions:
        names, why = fs.list_dir(vdir)
        if names is None:
            ctx.error(str(v), "version", f"version folder {why}", "make it readable")
            continue
        if kind == "ensemble":
            continue
        if not names:
            wanted = cfg.default_model_filename or DEFAULT_FILE.get(kind or "", "the model file")
            ctx.error(str(v), "version", f"version folder {v} is empty", f"put {wanted} in it or remove it")
            continue
        if kind not in DEFAULT_FILE:
            continue  # custom backend: no known file name
        wanted = [(cfg.default_model_filename or DEFAULT_FILE[kind],
                   "default_model_filename" if cfg.default_model_filename else "platform", None)]
        if kind == "tensorrt_plan":
            for cc, fname in sorted(cfg.cc_model_filenames.items()):
                if not _CC.fullmatch(cc):
                    ctx.warn(CONFIG, "cc_model_filenames", f"key {cc!r} is not a compute capability",
                             "use keys like \"8.0\" or \"8.6\"")
                wanted.append((fname, f"cc_model_filenames[{cc}]", cc))
        for fname, field, cc in wanted:
            if (cc is None and kind == "tensorrt_plan" and cfg.cc_model_filenames and not cfg.default_model_filename
                    and fs.kind(vdir / fname) == "missing"):
                ctx.warn(f"{v}/{fname}", field, "is missing, so GPUs whose compute capability "
                         "cc_model_filenames does not list have no plan to load",
                         "build a plan for those GPUs too, or serve only on the listed ones")
                continue
            mf = _check_file(ctx, kind, v, vdir, names, fname, field, base_real)
            if mf is not None:
                mf.cc = cc
                out.append(mf)
    return out


def _check_file(ctx: Context, kind: str, v: int, vdir: Path, names: list[str], fname: str, field: str,
                base_real: str) -> ModelFile | None:
    bad = fs.unsafe_relative(fname)
    if bad:
        ctx.error(CONFIG, field, f"model file name {fname!r} {bad}, so it points outside the version folder",
                  "use a plain file name inside the version folder")
        return None
    path = vdir / fname
    rel = f"{v}/{fname}"
    if os.path.lexists(path) and not fs.inside(base_real, path):
        ctx.error(rel, field, "resolves outside the model folder (symlink)",
                  "copy the model file into the version folder instead of linking outside the model folder")
        return None
    k = fs.kind(path)
    if k == "missing":
        suffix = Path(fname).suffix
        cands = [n for n in names if suffix and n.endswith(suffix) and n != fname]
        fix = (f"rename {cands[0]} to {fname} or set default_model_filename: \"{cands[0]}\"" if cands
               else f"put {fname} there, or set backend: \"python\" to serve {v}/model.py (the platform is then "
               "ignored)" if kind != "python" and "model.py" in names
               else f"put {fname} there or set default_model_filename to the file's name")
        ctx.error(rel, field, f"is missing; {kind} loads {fname} from each version folder", fix)
        return None
    if k.startswith("unreadable") or k == "other":
        ctx.error(rel, field, f"cannot be used as a model file ({k})", "replace it with a regular file")
        return None
    if kind == "tensorflow_savedmodel":
        if k != "dir" or fs.kind(path / "saved_model.pb") != "file":
            ctx.error(rel, field, "is not a SavedModel folder (no saved_model.pb)",
                      "export with tf.saved_model.save into this folder")
        return ModelFile(v, path, rel, field)
    if k == "dir":
        if kind == "onnxruntime_onnx" and fs.kind(path / "model.onnx") == "file":
            path, rel = path / "model.onnx", f"{rel}/model.onnx"
        else:
            ctx.error(rel, field, "is a folder where a model file is expected", f"replace it with the {kind} file")
            return None
    if fs.size(path) == 0:
        ctx.error(rel, field, "is empty (0 bytes)", "re-export or re-copy the model; an interrupted copy "
                  "leaves empty files")
        return None
    mf = ModelFile(v, path, rel, field)
    if kind == "onnxruntime_onnx":
        art, reasons, model = read_onnx(path, rel)
        for r in reasons:
            ctx.error(rel, "file", r, "re-export the model with torch.onnx.export and check it with onnx.checker")
        mf.artifact = art
        if model is not None:
            _check_external_data(ctx, model, path.parent, rel, base_real)
    elif kind == "python":
        text, why = fs.read_text(path)
        if text is None:
            ctx.error(rel, "file", why or "cannot be read", "make model.py a UTF-8 Python file")
        else:
            try:
                ast.parse(text, filename=rel)
            except (SyntaxError, ValueError) as exc:
                ctx.error(rel, "file", f"is not valid Python ({exc.__class__.__name__} at line "
                          f"{getattr(exc, 'lineno', '?')})", "fix the syntax error")
    elif kind == "pytorch_libtorch":
        try:
            ok = zipfile.is_zipfile(path)
        except OSError:
            ok = False
        if not ok:
            ctx.error(rel, "file", "is not a TorchScript archive (not a zip file)",
                      "save it with torch.jit.save(torch.jit.script(model) or torch.jit.trace(...))")
    return mf


def _check_external_data(ctx: Context, model: Any, folder: Path, rel: str, base_real: str) -> None:
    for loc in external_data_locations(model):
        bad = fs.unsafe_relative(loc)
        target = folder / loc
        if bad or (os.path.lexists(target) and not fs.inside(base_real, target)):
            ctx.error(rel, "external_data", f"external data location {loc!r} points outside the model folder",
                      "re-save the model with its external data next to it (onnx.save, location='x.data')")
        elif fs.kind(target) != "file":
            ctx.error(rel, "external_data", f"external data file {loc!r} is missing",
                      "copy the external data file next to the model")
