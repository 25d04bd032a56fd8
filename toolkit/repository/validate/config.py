"""Reading ``config.pbtxt`` against Triton's own schema, and the index of a repository's models."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.repository.validate import fs
from toolkit.repository.validate.problem import Context, Problem

CONFIG = "config.pbtxt"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
VERSION_RE = re.compile(r"[0-9]+")

_UNKNOWN_FIELD = re.compile(r'Message type "inference\.(\w+)" has no field named "([^"]*)"')
_UNKNOWN_ENUM = re.compile(r'Enum type "inference\.([\w.]+)" has no value named ([^\s.]+)')
_WHERE = re.compile(r"^(\d+):(\d+)\s*:\s*")


def _schema() -> Any:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def enum_names(enum_name: str) -> list[str]:
    """Value names of a ModelConfig enum (``DataType`` -> TYPE_BOOL, ...)."""
    mc = _schema()
    obj: Any = mc
    for part in enum_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return []
    try:
        return [n for n in obj.keys() if n != "TYPE_INVALID"]
    except AttributeError:
        return []


def parse(text: str, ctx: Context) -> Any:
    """A ``ModelConfig`` or None; each parse failure becomes one problem with a readable reason."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, _schema().ModelConfig())
    except Exception as exc:  # noqa: BLE001 - ParseError, RecursionError, anything: the file's fault
        msg = str(exc)
    where_m = _WHERE.match(msg)
    where = f"line {where_m.group(1)}" if where_m else "config"
    m = _UNKNOWN_FIELD.search(msg)
    if m:
        ctx.error(CONFIG, m.group(2), f"{where}: unknown field '{m.group(2)}' (Triton's {m.group(1)} has no such "
                  "field, so Triton refuses the config)",
                  "remove it or correct its spelling (see Triton's model_config.proto)")
        return None
    m = _UNKNOWN_ENUM.search(msg)
    if m:
        choices = ", ".join(enum_names(m.group(1))[:16])
        field = "data_type" if m.group(1) == "DataType" else m.group(1)
        ctx.error(CONFIG, field, f"{where}: unknown {m.group(1)} value '{m.group(2)}'",
                  f"use one of {choices}" if choices else "use a value the schema defines")
        return None
    if where_m:
        msg = f"line {where_m.group(1)}, column {where_m.group(2)}: {msg[where_m.end():]}"
    ctx.error(CONFIG, "-", f"does not parse as a Triton ModelConfig ({msg[:200]})",
              "fix the text at that position (protobuf text format, as Triton reads it)")
    return None


@dataclass
class Entry:
    """One model folder: its parsed config (None when absent or broken) and the parse problems."""

    name: str
    path: Path
    config: Any
    has_config_file: bool
    problems: list[Problem] = field(default_factory=list)

    def version_numbers(self) -> list[int]:
        names, _ = fs.list_dir(self.path)
        out = []
        for n in names or []:
            if VERSION_RE.fullmatch(n) and (n == "0" or n[0] != "0") and fs.kind(self.path / n) == "dir":
                out.append(int(n))
        return sorted(out)


def load_entry(name: str, path: Path) -> Entry:
    """Read and parse ``<path>/config.pbtxt``; never raises."""
    ctx = Context(name, [])
    cfg_path = path / CONFIG
    k = fs.kind(cfg_path)
    has_file = k != "missing"
    cfg = None
    if k == "missing":
        # Triton (auto-complete on, its default) builds the config: backend from the model file, the
        # rest from the model; the other checks judge that empty config as Triton would.
        from tritonclient.grpc import model_config_pb2 as mc

        cfg = mc.ModelConfig(name=name)
        ctx.note(CONFIG, "file", "is missing: Triton's auto-complete builds the config (backend from the model "
                 "file, inputs and outputs from the model); tritonkit serve --strict-config refuses the model",
                 "write one to pin what is served (tritonkit repo add does)")
    else:
        text, why = fs.read_text(cfg_path, MAX_CONFIG_BYTES)
        if text is None:
            ctx.error(CONFIG, "file", f"{why}", "make config.pbtxt a readable UTF-8 text file")
        else:
            cfg = parse(text, ctx)
    return Entry(name, path, cfg, has_file, ctx.problems)


def safe_model_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") and name.isprintable()


class Index:
    """Models of one repository, loaded on first use (an ensemble only reads the models it names)."""

    def __init__(self, root: Path, preload: dict[str, Entry] | None = None) -> None:
        self.root = root
        self.entries: dict[str, Entry | None] = dict(preload or {})

    def get(self, name: str) -> Entry | None:
        if name in self.entries:
            return self.entries[name]
        entry = None
        if safe_model_name(name) and not name.startswith(".") and fs.kind(self.root / name) == "dir":
            entry = load_entry(name, self.root / name)
        self.entries[name] = entry
        return entry
