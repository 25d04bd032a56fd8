"""YAML text for the manifests tritonkit generates: PyYAML's safe dumper, block style, keys in the order
written, ambiguous strings quoted (``"true"``, ``"on"``, ``"1.0"`` stay strings for YAML 1.1 and 1.2 readers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

_OPTIONS: dict[str, Any] = {"sort_keys": False, "default_flow_style": False, "allow_unicode": False,
                            "width": 4096}  # no folding of long flags into several lines


def dump(document: Any) -> str:
    """One YAML document."""
    return yaml.safe_dump(document, **_OPTIONS)


def dump_all(documents: Sequence[Any]) -> str:
    """Several documents, separated by ``---``."""
    return yaml.safe_dump_all(list(documents), **_OPTIONS)
