"""File-system reads that never raise and never follow a path out of its folder.

Why: the linter runs on any repository, including hostile ones (FIFOs that would block a read,
symlinks to /dev/zero, binary files, unreadable folders); every failure becomes a reason string.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_TEXT_BYTES = 16 * 1024 * 1024


def unsafe_relative(rel: str) -> str | None:
    """Why ``rel`` (a path a config names) may not be joined to a folder, or None when it may."""
    if rel == "":
        return "is empty"
    if "\x00" in rel:
        return "contains a NUL character"
    if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return "is an absolute path"
    parts = rel.replace("\\", "/").split("/")
    if ".." in parts:
        return "contains '..'"
    return None


def inside(base_real: str, path: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside the already-resolved folder ``base_real``."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return False
    return real == base_real or real.startswith(base_real.rstrip(os.sep) + os.sep)


def kind(path: Path) -> str:
    """``file``, ``dir``, ``missing``, ``other`` (FIFO, device, socket) or ``unreadable: why``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc.__class__.__name__}: {exc.strerror if isinstance(exc, OSError) else exc}"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "other"


def size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, ValueError):
        return -1


def read_bytes(path: Path, limit: int = MAX_TEXT_BYTES) -> tuple[bytes | None, str | None]:
    """(content, None) or (None, why it cannot be read). Only regular files are opened."""
    k = kind(path)
    if k == "missing":
        return None, "is missing"
    if k == "dir":
        return None, "is a folder, not a file"
    if k == "other":
        return None, "is not a regular file (FIFO, device or socket)"
    if k != "file":
        return None, f"cannot be read ({k.removeprefix('unreadable: ')})"
    from contract.fileio import NotRegularFileError, open_regular

    try:
        with os.fdopen(open_regular(path), "rb") as fh:  # O_NONBLOCK + fstat: a FIFO swapped in never blocks
            data = fh.read(limit + 1)
    except NotRegularFileError:
        return None, "is not a regular file (FIFO, device or socket)"
    except OSError as exc:
        return None, f"cannot be read ({exc.__class__.__name__}: {exc.strerror})"
    if len(data) > limit:
        return None, f"is larger than {limit // (1024 * 1024)} MiB"
    return data, None


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> tuple[str | None, str | None]:
    """(UTF-8 text, None) or (None, why not)."""
    data, why = read_bytes(path, limit)
    if data is None:
        return None, why
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (byte {exc.start})"


def list_dir(path: Path) -> tuple[list[str] | None, str | None]:
    """Sorted entry names, or (None, why the folder cannot be listed)."""
    try:
        return sorted(os.listdir(path)), None
    except OSError as exc:
        return None, f"cannot be listed ({exc.__class__.__name__}: {exc.strerror})"
