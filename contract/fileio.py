"""File primitives every stage shares: streamed sha256 and atomic writes.

Kept free of heavy imports so the repository writer and the CLI do not pull in torch.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync one file or folder (a folder's fsync makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers never see half a file.

    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600, so a server
    running as another user can read it; ``mode`` sets other permissions before the rename (a
    private record is never readable by others, not even for a moment).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask() if mode is None else mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


class NotRegularFileError(OSError):
    """A path that must name a regular file names something else (FIFO, device, folder, symlink)."""


def _kind(mode: int) -> str:
    import stat

    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symlink"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], *, follow_symlinks: bool = True) -> int:
    """Open ``path`` for reading only if it is a regular file; returns the fd.

    Opens with ``O_NONBLOCK`` (a FIFO never blocks the open) and checks the opened file itself with
    ``fstat``, so a file swapped in between a check and the open cannot slip through. With
    ``follow_symlinks=False`` a symlink is refused too (``O_NOFOLLOW``).

    Raises:
        FileNotFoundError: nothing is there.
        NotRegularFileError: it is a FIFO, device, socket, folder (or a symlink when not followed).
    """
    import stat

    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        info = os.lstat(path) if not follow_symlinks else os.stat(path)
    except FileNotFoundError:
        raise
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFileError(f"{path} is {_kind(info.st_mode)}, not a regular file")
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        import errno

        if exc.errno == errno.ELOOP:
            raise NotRegularFileError(f"{path} is a symlink, not a regular file") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{path} is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular_bytes(path: str | os.PathLike[str], *, limit: int | None = None,
                       follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`), refusing one larger than ``limit``."""
    fd = open_regular(path, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb") as fh:
        if limit is None:
            return fh.read()
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise NotRegularFileError(f"{path} is larger than {limit} bytes")
    return data


def read_regular_text(path: str | os.PathLike[str], *, limit: int | None = None,
                      follow_symlinks: bool = True) -> str:
    """:func:`read_regular_bytes` decoded as UTF-8 (undecodable bytes raise ``UnicodeDecodeError``)."""
    return read_regular_bytes(path, limit=limit, follow_symlinks=follow_symlinks).decode("utf-8")


def open_user_file(path: str | os.PathLike[str], error: type[Exception], *, missing: str, hint: str) -> int:
    """:func:`open_regular` for a file a user named, every failure as one ``error`` line.

    Args:
        error: the exception class to raise (a TritonkitError subclass, so the CLI prints one line).
        missing: what to say when nothing is there (after ``PATH: ``).
        hint: how to fix any other failure (a FIFO, a folder, unreadable).
    """
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except NotRegularFileError as exc:
        raise error(f"{exc}; {hint}") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or type(exc).__name__}); {hint}") from None


def read_user_bytes(path: str | os.PathLike[str], error: type[Exception], *, missing: str, hint: str) -> bytes:
    """The bytes of a file a user named (see :func:`open_user_file`)."""
    with os.fdopen(open_user_file(path, error, missing=missing, hint=hint), "rb") as fh:
        return fh.read()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` as UTF-8 (records, reports, JSON)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_text(text: str) -> str:
    """Hex sha256 of a string's UTF-8 bytes (recorded configs, content-addressed names)."""
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_of_regular(path: str | os.PathLike[str], *, limit: int | None = None,
                      follow_symlinks: bool = True) -> str | None:
    """Hex sha256 of a regular file (see :func:`open_regular`), or None when it is missing, not a
    regular file (a FIFO never blocks), unreadable or larger than ``limit`` bytes: for checks that
    report a file instead of failing on it."""
    try:
        fd = open_regular(path, follow_symlinks=follow_symlinks)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if limit is not None and os.fstat(fh.fileno()).st_size > limit:
            return None
        digest = hashlib.sha256()
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        except OSError:
            return None
    return digest.hexdigest()
