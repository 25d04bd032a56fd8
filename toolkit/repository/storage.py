"""Where a repository lives: the operations publishing and version management need from it.

:class:`RepositoryStorage` names them (list models and versions, read a file, take the writer
lock, stage and commit a version, atomically replace a config, remove a version);
:class:`LocalStorage` implements them on a local filesystem, the only backend so far (an S3
one can follow, issue 16). The module-level functions are the local implementation, used
directly by :mod:`toolkit.repository.publish` and :mod:`toolkit.repository.versions`.

Why so careful: a polling Triton reads this tree at any moment and another user may share the
parent folder, so nothing here follows a symlink out of the repository, every rename stays on one
filesystem, and the writer lock is opened without following symlinks and must be ours.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from contract.errors import RepositoryError
from contract.fileio import NotRegularFileError, atomic_write_bytes, fsync_path, read_regular_text

CONFIG = "config.pbtxt"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
STAGING_PREFIX = ".tritonkit-staging-"  # inside a model folder: not a number, so Triton ignores it
TRASH_PREFIX = ".tritonkit-trash-"
VERSION_RE = re.compile(r"[1-9][0-9]*", re.ASCII)  # what Triton loads: ASCII digits, no leading zero
ANY_NUMBER_RE = re.compile(r"[0-9]+", re.ASCII)  # every name Triton might take as a version number
FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)  # a file name inside a version folder
_SIDE_STAGE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*-[0-9]+-[A-Za-z0-9_]{8}", re.ASCII)
_OURS_RE = re.compile(rf"(?:{re.escape(STAGING_PREFIX)}|{re.escape(TRASH_PREFIX)})[0-9]+-[A-Za-z0-9_]{{8}}",
                      re.ASCII)
_TMP_CONFIG_RE = re.compile(r"\.config\.pbtxt\.[A-Za-z0-9_]{8}\.tmp", re.ASCII)
# Publishing steps, in order; tests inject faults between them through TRITONKIT_FAULT_AT.
STEPS = ("cleaned", "staged", "validated", "fsynced", "labels_written", "version_renamed", "config_replaced",
         "done")


def lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def is_real_dir(path: Path) -> bool:
    """A folder that is not a symlink (symlinks are never followed out of the repository)."""
    st = lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def entry_names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def version_numbers(model_dir: Path) -> list[int]:
    """Numeric version folders as Triton sees them (no leading zero, real folders), ascending."""
    return sorted(int(n) for n in entry_names(Path(model_dir))
                  if VERSION_RE.fullmatch(n) and is_real_dir(Path(model_dir) / n))


def taken_numbers(model_dir: Path) -> list[int]:
    """Every numeric name in the model folder, whatever it is: a new version never reuses one."""
    return sorted(int(n) for n in entry_names(model_dir) if ANY_NUMBER_RE.fullmatch(n))


def fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            fsync_path(os.path.join(dirpath, f))
        fsync_path(dirpath)


def fault(step: str) -> None:
    """Test hook: ``TRITONKIT_FAULT_AT=<step>`` kills the process right after that step."""
    if os.environ.get("TRITONKIT_FAULT_AT") == step:
        os.kill(os.getpid(), 9)


def side_dir(repository: Path, suffix: str) -> Path:
    """A folder beside the repository (not inside what Triton scans)."""
    repository = repository.resolve()
    return repository.parent / f".{repository.name}.{suffix}"


def check_ours(path: Path, what: str, st: os.stat_result) -> None:
    """Refuse a lock or staging path another user could control (owner, mode, symlink)."""
    if st.st_uid != os.geteuid():
        raise RepositoryError(
            f"{path}: the {what} belongs to user id {st.st_uid}, who could tamper with what tritonkit writes; "
            "remove it, or publish into a repository whose parent folder only you can write"
        )
    if st.st_mode & 0o022:
        raise RepositoryError(
            f"{path}: the {what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run 'chmod go-w {path}' or remove it"
        )


def open_lock(lock_path: Path) -> int:
    """Open (or create) the lock file without following a symlink; it must be ours and regular."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_path, flags | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            fd = os.open(lock_path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RepositoryError(
                    f"{lock_path}: the writer lock is a symlink (it could make tritonkit create or truncate a "
                    "file elsewhere); remove it and retry") from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise RepositoryError(f"{lock_path}: the writer lock is not a plain regular file (a device, FIFO or a "
                                  "hard link to another file); remove it and retry")
        check_ours(lock_path, "writer lock", st)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def repository_lock(repository: Path, timeout: float = 120.0) -> Iterator[None]:
    """Exclusive lock serializing writers of one repository (flock on a file beside it)."""
    lock_path = side_dir(repository, "lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_lock(lock_path)
    except OSError as exc:
        raise RepositoryError(
            f"{repository}: cannot take the writer lock {lock_path} ({exc.strerror}); the repository is "
            "unchanged. Fix permissions or free space and retry"
        ) from None
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RepositoryError(
                        f"{repository}: another writer holds {lock_path} for over {timeout:.0f}s; "
                        "wait for it or remove a stale lock holder"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def read_text(path: Path, what: str, limit: int) -> str:
    """A repository file's text: regular files only (a FIFO never blocks), symlinks refused."""
    try:
        return read_regular_text(path, limit=limit, follow_symlinks=False)
    except FileNotFoundError:
        raise RepositoryError(f"{path}: {what} is missing") from None
    except NotRegularFileError as exc:
        raise RepositoryError(f"{path}: {what} is not a regular file ({exc}); replace it with the file "
                              "tritonkit wrote or remove the version") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RepositoryError(f"{path}: cannot read the {what} ({exc}); fix permissions or remove it") from None


def clean_stale(repository: Path, model_dir: Path) -> list[str]:
    """Remove staging and trash folders of killed writers (we hold the lock, so no writer is alive).

    Only folders that are ours are touched: our naming pattern, our user, real folders (not
    symlinks), inside the model folder or the side staging folder.
    """
    removed = []
    candidates = [model_dir / n for n in entry_names(model_dir) if _OURS_RE.fullmatch(n) or _TMP_CONFIG_RE.fullmatch(n)]
    side = side_dir(repository, "staging")
    side_st = lstat(side)
    if side_st is not None and stat.S_ISDIR(side_st.st_mode) and side_st.st_uid == os.geteuid():
        candidates += [side / n for n in entry_names(side) if _SIDE_STAGE_RE.fullmatch(n)]
    for path in candidates:
        st = lstat(path)
        if st is None or st.st_uid != os.geteuid():
            continue
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        elif stat.S_ISREG(st.st_mode):
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(str(path))
    return removed


def stage_root(repository: Path, model_dir: Path, name: str, version: int) -> tuple[Path, bool]:
    """(staging folder, whether it is beside the repository) on the repository's own filesystem."""
    if is_real_dir(model_dir):
        return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=model_dir)), False
    if lstat(model_dir) is not None:
        raise RepositoryError(f"{model_dir}: exists and is not a real folder (a file or symlink); move it out of "
                              "the repository")
    side = side_dir(repository, "staging")
    try:
        same_fs = os.stat(repository).st_dev == os.stat(side.parent).st_dev
    except OSError:
        same_fs = False
    if same_fs:
        side.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(side)
        if not stat.S_ISDIR(st.st_mode):
            raise RepositoryError(f"{side}: the staging folder is not a real folder; remove it and retry")
        check_ours(side, "staging folder", st)
        return Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=side)), True
    # The repository is its own mount point: stage inside the (new, empty) model folder.
    model_dir.mkdir()
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=model_dir)), False


def prepare_repository(repository: Path) -> None:
    # The repository root itself may be a symlink the user made (e.g. to a data disk); nothing inside it is followed.
    if lstat(repository) is not None and not repository.is_dir():
        raise RepositoryError(f"{repository}: exists and is not a folder; choose another --repository")
    try:
        repository.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepositoryError(f"{repository}: cannot create the repository ({exc.strerror}); "
                              "fix permissions or choose another --repository") from None


def tree_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder``, never following a symlink."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder, followlinks=False):
        for f in files:
            st = lstat(Path(dirpath) / f)
            if st is not None and stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _place_labels(staged: Path, target: Path) -> None:
    """Labels go in under their content-addressed name (an existing one holds the same text)."""
    st = lstat(target)
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
        try:
            if read_regular_text(target, limit=MAX_CONFIG_BYTES * 16, follow_symlinks=False) == staged.read_text():
                return
        except (OSError, UnicodeDecodeError):
            pass
    os.replace(staged, target)


def commit_version(model_dir: Path, stage: Path, version: int, label_file: str | None, *,
                   beside: bool, new_model: bool) -> None:
    """Make a staged model folder (``stage / "model"``) live: fsync, labels, version rename, config last.

    The version folder is renamed in before any config names it (so Triton ignores it until the
    config switch); a new model beside the repository appears whole in one rename. An OSError
    after the version is renamed in takes it back out before propagating.

    Raises:
        OSError: the repository is unchanged (the caller words it).
        RepositoryError: the version could not be taken back out (says what to delete).
    """
    staged_model = stage / "model"
    moved_in = False
    try:
        fsync_tree(stage)
        fault("fsynced")
        if beside:  # a new model: the whole folder appears at once
            os.rename(staged_model, model_dir)
            fsync_path(model_dir.parent)
            for step in ("labels_written", "version_renamed", "config_replaced"):
                fault(step)
            return
        if label_file:
            _place_labels(staged_model / label_file, model_dir / label_file)
        fault("labels_written")
        if new_model:  # own mount point, no model yet: the config first, naming a version not yet there
            os.replace(staged_model / CONFIG, model_dir / CONFIG)
            fsync_path(model_dir)
        os.rename(staged_model / str(version), model_dir / str(version))  # not named by the live config yet
        moved_in = True
        fsync_path(model_dir)
        fault("version_renamed")
        if not new_model:
            os.replace(staged_model / CONFIG, model_dir / CONFIG)
            fsync_path(model_dir)
        fault("config_replaced")
    except OSError as exc:
        if moved_in and not new_model:  # not named by any config, but take it back out anyway
            try:
                os.rename(model_dir / str(version), stage / "withdrawn")
            except OSError:
                raise RepositoryError(
                    f"{model_dir.parent}: publishing {model_dir.name} version {version} failed "
                    f"({exc.strerror or exc}) after the version folder was renamed in (no config names it, so "
                    f"Triton ignores it); delete {model_dir / str(version)} by hand"
                ) from None
        raise


def replace_config(model_dir: Path, text: str) -> None:
    """Atomically replace the live ``config.pbtxt`` (temporary name, fsync, rename)."""
    atomic_write_bytes(model_dir / CONFIG, text.encode())


def remove_version(model_dir: Path, version: int) -> None:
    """Rename a version to a trash name Triton ignores (same filesystem), then delete it."""
    trash = model_dir / f"{TRASH_PREFIX}{version}-{os.urandom(6).hex()[:8]}"
    os.rename(model_dir / str(version), trash)
    shutil.rmtree(trash, ignore_errors=True)


class RepositoryStorage(Protocol):
    """What publishing and version management need from a repository location."""

    def model_names(self) -> list[str]:
        """Model folder names (dot-names excluded)."""

    def version_numbers(self, model: str) -> list[int]:
        """The versions Triton would see for ``model``, ascending."""

    def read_text(self, relative: str, what: str, limit: int) -> str:
        """A file's text; RepositoryError when missing, not a regular file or unreadable."""

    def lock(self) -> AbstractContextManager[None]:
        """The exclusive writer lock."""

    def replace_config(self, model: str, text: str) -> None:
        """Atomically replace ``model``'s live config."""

    def commit_version(self, model: str, stage: Path, version: int, label_file: str | None, *,
                       beside: bool, new_model: bool) -> None:
        """Make a staged version live, config last."""

    def remove_version(self, model: str, version: int) -> None:
        """Delete a version no config names any more."""


class LocalStorage:
    """:class:`RepositoryStorage` on a local filesystem folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def model_names(self) -> list[str]:
        return [n for n in entry_names(self.root) if not n.startswith(".") and is_real_dir(self.root / n)]

    def version_numbers(self, model: str) -> list[int]:
        return version_numbers(self.root / model)

    def read_text(self, relative: str, what: str, limit: int) -> str:
        return read_text(self.root / relative, what, limit)

    def lock(self) -> AbstractContextManager[None]:
        return repository_lock(self.root)

    def replace_config(self, model: str, text: str) -> None:
        replace_config(self.root / model, text)

    def commit_version(self, model: str, stage: Path, version: int, label_file: str | None, *,
                       beside: bool, new_model: bool) -> None:
        commit_version(self.root / model, stage, version, label_file, beside=beside, new_model=new_model)

    def remove_version(self, model: str, version: int) -> None:
        remove_version(self.root / model, version)
