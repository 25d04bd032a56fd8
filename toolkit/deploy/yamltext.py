"""A small YAML writer for the manifests tritonkit generates (block style, every ambiguous string quoted).

Why not PyYAML: tritonkit's runtime dependencies do not include it, and the manifests are plain data
(mappings, lists, strings, numbers, booleans). Strings are written plain only when YAML 1.1 and 1.2 both
read them back as the same string (so ``"true"``, ``"1.0"``, ``"on"``, ``"0x1"`` and ``"~"`` stay
quoted); anything else is written double-quoted, in ASCII, with YAML's escapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# A plain scalar that no YAML resolver takes for a number, boolean, null, date or special form.
_PLAIN = re.compile(r"[A-Za-z_/.$][A-Za-z0-9_./$=-]*", re.ASCII)
_RESERVED = {
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "nan", ".nan", "inf", ".inf", "-.inf",
}


_SHORT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar in ASCII: printable ASCII as is, everything else escaped by code point
    (``\\U`` for characters beyond the BMP, which JSON's surrogate pairs would split in two)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no portable YAML spelling")
        text = repr(value)  # YAML 1.1 reads a float only with a dot in its mantissa: 1e+16 -> 1.0e+16
        mantissa, e, exponent = text.partition("e")
        return text if "." in mantissa else f"{mantissa}.0{e}{exponent}"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED and not value.startswith(".") \
                and not value.endswith(":"):
            return value
        return _quoted(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"mapping keys must be strings, not {type(key).__name__}")
    return _scalar(key)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        out: list[str] = []
        for k, v in value.items():
            out += _entry(pad + _key(k) + ":", v, indent)
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            out += _entry(pad + "-", item, indent, in_list=True)
        return out
    return [pad + _scalar(value)]


def _entry(head: str, value: Any, indent: int, in_list: bool = False) -> list[str]:
    """``head`` (``key:`` or ``-``) followed by ``value`` inline (scalars, empty collections) or nested."""
    nested = isinstance(value, (Mapping, list, tuple)) and bool(value)
    if not nested:
        return [f"{head} {_lines(value, 0)[0]}"]
    if in_list and isinstance(value, Mapping):
        body = _lines(value, indent + 2)
        return [f"{head} {body[0].lstrip()}", *body[1:]]
    return [head, *_lines(value, indent + 2)]


def dump(document: Any) -> str:
    """One YAML document (no ``---``), ending in a newline."""
    return "\n".join(_lines(document, 0)) + "\n"


def dump_all(documents: Sequence[Any]) -> str:
    """Several documents separated by ``---``."""
    return "---\n".join(dump(d) for d in documents)
