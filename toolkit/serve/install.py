"""A runnable Triton Inference Server made from the ``nvidia-pytriton`` wheel.

The wheel carries ``tritonserver``, the python backend and one python stub per Python version,
but its folder lives in site-packages (read-only in many installs) and lacks the stub in place.
:func:`prepare_triton` copies it once into a folder tritonkit owns, adds the stub for the running
Python and tritonkit's Python-based ``onnxruntime`` backend, and returns what is needed to run it.
The copy is built in a temporary folder and renamed into place, so two processes preparing at the
same time both end with a complete install and never see a half-copied one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from contract.errors import MissingDependencyError
from contract.fileio import atomic_write_bytes

_BACKEND_SOURCE = Path(__file__).resolve().parent / "backends"
_ARGV_KEY_SOURCE = Path(__file__).resolve().parent / "argv_key.c"
_COMPLETE = ".tritonkit-complete"


@dataclass(frozen=True)
class TritonInstall:
    """A prepared Triton: where its pieces are and the environment it must run with."""

    root: Path
    version: str
    libs_dir: Path
    stub_env: Path | None = None

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def backend_dir(self) -> Path:
        return self.root / "backends"

    @property
    def cache_dir(self) -> Path:
        return self.root / "caches"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Process environment for tritonserver and its python stubs.

        The running Python's LIBDIR goes first so the stub loads this interpreter's
        ``libpython`` rather than the system one (a mixed interpreter broke multiprocessing);
        then the wheel's bundled libraries. The stub embeds Python, ignores PYTHONPATH and finds its
        prefix from the ``python3`` on PATH, so the stub environment (see :func:`_stub_env`: this
        interpreter's packages, no bytecode written) and then the running interpreter's folder go
        first on PATH: a virtual environment's packages (numpy, onnxruntime) are what the stub uses.
        """
        env = dict(os.environ if base is None else base)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        parts = [p for p in (libdir, str(self.libs_dir), env.get("LD_LIBRARY_PATH", "")) if p]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(parts)
        bindir = str(Path(sys.executable).parent)
        stub_bin = str(self.stub_env / "bin") if self.stub_env else ""
        env["PATH"] = os.pathsep.join(p for p in (stub_bin, bindir, env.get("PATH", "")) if p)
        # For any Python the server starts that does honour the environment (the stub does not:
        # _stub_env is what keeps it from writing __pycache__ into published version folders).
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env


def tritonkit_home() -> Path:
    """Where tritonkit keeps prepared servers: ``$TRITONKIT_HOME`` or ``~/.cache/tritonkit``."""
    home = os.environ.get("TRITONKIT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "tritonkit"


def _wheel_paths() -> tuple[Path, Path, str]:
    try:
        dist = metadata.distribution("nvidia-pytriton")
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            "nvidia-pytriton is not installed; install it with `pip install nvidia-pytriton==0.7.0` "
            "or use --runtime docker"
        ) from None
    site = Path(dist.locate_file(""))
    server = site / "pytriton" / "tritonserver"
    libs = site / "nvidia_pytriton.libs"
    if not (server / "bin" / "tritonserver").is_file():
        raise MissingDependencyError(
            f"{server}: no tritonserver binary in the nvidia-pytriton wheel; reinstall nvidia-pytriton"
        )
    return server, libs, dist.version


def _stub_for_running_python(server: Path) -> Path:
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not stub.is_file():
        have = sorted(p.name for p in (server / "python_backend_stubs").iterdir())
        raise MissingDependencyError(
            f"nvidia-pytriton has no python stub for Python {ver} (has {', '.join(have)}); "
            "run tritonkit with one of those Python versions or use --runtime docker"
        )
    return stub


def _sync_file(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src``, atomically, only when the bytes differ."""
    data = src.read_bytes()
    if dst.is_file() and dst.read_bytes() == data:
        return
    atomic_write_bytes(dst, data)


def _sync_backends(root: Path) -> None:
    """Copy tritonkit's Python-based backends in; refresh any whose source changed."""
    for src in sorted(_BACKEND_SOURCE.glob("*/model.py")):
        _sync_file(src, root / "backends" / src.parent.name / "model.py")


def _stub_env(root: Path) -> Path:
    """A virtual-environment shim the python stubs run in: this interpreter's packages, no bytecode.

    The stub embeds Python with an isolated config: it ignores PYTHONDONTWRITEBYTECODE and
    PYTHONPATH and finds its prefix from the ``python3`` first on PATH. So PATH gets a folder whose
    ``python3`` sits in a tiny venv (``pyvenv.cfg`` pointing at this interpreter's base) whose only
    ``.pth`` switches bytecode writing off and adds this interpreter's site-packages. Without it the
    stub wrote ``__pycache__`` into published version folders, which must never change (and the
    first repository poll then saw a changed version).
    """
    import site

    sites = [p for p in site.getsitepackages() if Path(p).is_dir()]
    base_bin = sysconfig.get_config_var("BINDIR") or str(Path(sys.executable).parent)
    if sys.prefix != sys.base_prefix:
        base_bin = str(Path(getattr(sys, "_base_executable", sys.executable)).parent)
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    pth = "import sys; sys.dont_write_bytecode = True\n" + "".join(
        f"import site; site.addsitedir({p!r})\n" for p in sites)
    cfg = f"home = {base_bin}\ninclude-system-site-packages = false\nversion = {ver}\n"
    digest = hashlib.sha256(f"{sys.executable}\n{cfg}{pth}".encode()).hexdigest()[:16]
    env_dir = root / f"stub-env-{digest}"
    if (env_dir / _COMPLETE).is_file():
        return env_dir
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{env_dir.name}."))
    try:
        (tmp / "bin").mkdir()
        os.symlink(sys.executable, tmp / "bin" / "python3")
        (tmp / "pyvenv.cfg").write_text(cfg)
        lib = tmp / "lib" / f"python{ver}" / "site-packages"
        lib.mkdir(parents=True)
        (lib / "_tritonkit_stub.pth").write_text(pth)
        (tmp / _COMPLETE).write_text(f"{sys.executable}\n")
        try:
            os.rename(tmp, env_dir)
        except OSError:
            if not (env_dir / _COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return env_dir


def prepare_triton(home: Path | None = None) -> TritonInstall:
    """Return a runnable Triton, copying it out of the wheel the first time.

    Idempotent and cheap once done (one stat plus a compare of the backend sources).

    Raises:
        MissingDependencyError: the wheel, its binary, or the stub for this Python is missing.
    """
    server, libs, version = _wheel_paths()
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    home = home or tritonkit_home()
    root = home / f"triton-{version}-py{ver}"
    if not (root / _COMPLETE).is_file():
        home.mkdir(parents=True, exist_ok=True)
        stub = _stub_for_running_python(server)
        tmp = Path(tempfile.mkdtemp(dir=home, prefix=f".{root.name}."))
        try:
            build = tmp / "triton"
            shutil.copytree(server, build, ignore=shutil.ignore_patterns("python_backend_stubs", "__pycache__"))
            shutil.copy2(stub, build / "backends" / "python" / stub.name)
            _sync_backends(build)
            (build / _COMPLETE).write_text(f"nvidia-pytriton {version}\npython {ver}\n")
            try:
                os.rename(build, root)
            except OSError:
                # Another process finished first (or a stale incomplete copy is in the way).
                if not (root / _COMPLETE).is_file():
                    shutil.rmtree(root, ignore_errors=True)
                    os.rename(build, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _sync_backends(root)
    return TritonInstall(root=root, version=version, libs_dir=libs, stub_env=_stub_env(root))


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _trusted(path: Path) -> bool:
    """Ours and writable by nobody else: a library tritonserver preloads must not be someone else's."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def argv_key_library(home: Path | None = None) -> Path:
    """The compiled ``argv_key.c`` (see its header): hands tritonserver its admin key off the command line.

    Built once per source version with the system C compiler into tritonkit's home, atomically.

    Raises:
        MissingDependencyError: no C compiler, or it failed (the server is then not started at all:
            never a key on the command line instead).
    """
    source = _ARGV_KEY_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    home = home or tritonkit_home()
    lib = home / f"argv_key-{digest}-{platform.machine()}.so"
    if _trusted(lib):
        return lib
    cc = _compiler()
    if cc is None:
        raise MissingDependencyError(
            "no C compiler found (cc, gcc or clang); tritonkit compiles a 60-line helper that gives "
            "tritonserver its admin key without putting it on the command line: install one "
            "(`apt-get install gcc`) or set CC"
        )
    home.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=home, prefix=".argv_key."))
    try:
        src = tmp_dir / "argv_key.c"
        src.write_bytes(source)
        out = tmp_dir / lib.name
        done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not out.is_file():
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise MissingDependencyError(
                f"{cc} could not build {_ARGV_KEY_SOURCE.name} ({first}); install a working C compiler "
                "(`apt-get install gcc`) or set CC"
            )
        os.chmod(out, 0o755)
        os.replace(out, lib)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return lib
