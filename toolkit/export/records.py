"""The JSON record saved beside every artifact a stage makes (the exact call, versions, hashes).

Model Navigator's habit: the command that made a file lives next to it, so a reader can redo it.
One naming rule for every kind of record, so later stages find them without guessing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract.fileio import atomic_write_text

SUFFIXES = {"export": ".export.json", "quantize": ".quantize.json", "plan": ".json"}


def record_path(artifact: str | os.PathLike[str], kind: str = "export") -> Path:
    """Where the record of ``artifact`` lives: ``<artifact><suffix of kind>``."""
    return Path(f"{artifact}{SUFFIXES[kind]}")


def write_record(artifact: str | os.PathLike[str], kind: str, record: Mapping[str, Any]) -> Path:
    """Write the record atomically (sorted keys, so two identical runs give identical bytes)."""
    path = record_path(artifact, kind)
    atomic_write_text(path, json.dumps(dict(record), indent=2, sort_keys=True))
    return path
