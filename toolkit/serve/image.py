"""A CPU stand-in for NVIDIA's Triton container image, built here from the ``nvidia-pytriton`` wheel.

NGC images cannot be pulled everywhere tritonkit runs (and need a GPU to be worth pulling), yet
"Triton in a container" must be testable for real. This module builds an OCI image with podman that
has the NGC layout where tritonkit relies on it:

- ``/opt/tritonserver/bin/tritonserver`` (on PATH) and its libraries in ``/opt/tritonserver/lib``
  (the wheel's ``nvidia_pytriton.libs``; ``LD_LIBRARY_PATH`` names them);
- ``/opt/tritonserver/backends/python`` with the python stub for the image's Python (3.11, the
  version Debian bookworm ships and the wheel has a stub for);
- tritonkit's Python-based ``onnxruntime`` backend at ``/opt/tritonserver/backends/onnxruntime``
  (copied by :mod:`toolkit.serve.install`'s own function, as the embedded server gets it) with the
  tritonkit modules it imports, plus numpy < 2, ONNX Runtime and Pillow for Python 3.11;
- a non-root user ``triton-server`` (uid 1000), as NGC's image runs.

The root filesystem is Debian bookworm from ``debootstrap --variant=minbase`` (cached under
``<tritonkit home>/image``, so a backend change re-assembles in seconds without re-bootstrapping).
The tag is ``localhost/tritonkit/tritonserver-cpu:<triton version>-<content hash>``; the hash covers
every input (wheel version, backend and module sources, package lists, suite, this file), so an
unchanged tree is built once and reused. The image is assembled in a temporary folder, imported
untagged and tagged last: an interrupted build leaves no tag that looks complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from contract.errors import MissingDependencyError, ServerError
from toolkit.serve.install import _sync_backends, _wheel_paths, tritonkit_home

IMAGE_NAME = "localhost/tritonkit/tritonserver-cpu"
PROBE_IMAGE = "localhost/tritonkit/engine-probe:1"
SUITE = "bookworm"
PYTHON_VERSION = "3.11"
# ca-certificates: Triton reads s3://, gs:// and as:// repositories over TLS with the system CA bundle.
DEBIAN_PACKAGES = ("python3", f"libpython{PYTHON_VERSION}", "ca-certificates")
USER = "triton-server"
UID = 1000
OPT = "/opt/tritonserver"
SITE_DIR = f"/usr/local/lib/python{PYTHON_VERSION}/dist-packages"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Triton server release inside each nvidia-pytriton wheel (the wheel names only its own version).
TRITON_FOR_PYTRITON = {"0.7.0": "2.51.0"}
# tritonkit modules the onnxruntime backend imports (the stub runs it outside tritonkit's environment).
BACKEND_IMPORTS = ("toolkit.repository.validate.onnx_rules",)
_COMPLETE = ".tritonkit-complete"
_PATH = f"{OPT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImagePlan:
    """What the stand-in image for this tritonkit would be: its tag and the inputs its hash covers."""

    tag: str
    triton_version: str
    digest: str
    inputs: dict[str, str]


@dataclass
class BuildResult:
    """The outcome of :func:`build_image`: the tag, whether it was built now, and step timings (seconds)."""

    tag: str
    built: bool
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)


def image_home() -> Path:
    """Cache folder for the root filesystem, the Python packages and the build lock."""
    return tritonkit_home() / "image"


def debian_mirror() -> str:
    """The Debian archive this host's apt uses (``$TRITONKIT_DEBIAN_MIRROR`` overrides; else deb.debian.org)."""
    override = os.environ.get("TRITONKIT_DEBIAN_MIRROR")
    if override:
        return override
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for match in re.finditer(r"(?:^\s*URIs:\s*|^\s*deb\s+(?:\[[^\]]*\]\s+)?)(https?://\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if "security" not in uri and uri.endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def requirements() -> list[str]:
    """Python packages for the image: the versions this environment serves with (same answers), numpy < 2."""
    wanted: list[str] = []
    for name, fallback in (("numpy", "numpy<2"), ("onnxruntime", "onnxruntime"), ("pillow", "pillow")):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            wanted.append(fallback)
            continue
        if name == "numpy" and int(version.split(".")[0]) >= 2:
            wanted.append(fallback)
        else:
            wanted.append(f"{name}=={version}")
    return wanted


def backend_module_files() -> dict[str, Path]:
    """tritonkit/contract source files the onnxruntime backend imports: ``{path in site-packages: source}``.

    Found by importing :data:`BACKEND_IMPORTS` in a fresh interpreter, so the list follows the code.
    """
    code = (
        "import json, sys\n"
        f"for m in {BACKEND_IMPORTS!r}: __import__(m)\n"
        "print(json.dumps(sorted({m.__file__ for n, m in list(sys.modules.items())"
        " if n.split('.')[0] in ('toolkit', 'contract') and getattr(m, '__file__', None)})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    if done.returncode != 0:
        raise ServerError(f"cannot list the modules the onnxruntime backend imports: {done.stderr.strip()[-300:]}")
    root = Path(__file__).resolve().parents[2]
    files: dict[str, Path] = {}
    for name in json.loads(done.stdout):
        path = Path(name).resolve()
        files[str(path.relative_to(root))] = path
    return files


def _backend_sources() -> list[Path]:
    from toolkit.serve import install

    return sorted(install._BACKEND_SOURCE.glob("*/model.py"))


def plan_image() -> ImagePlan:
    """The tag this tritonkit's stand-in image has; cheap (hashes sources, starts no build)."""
    _server, _libs, wheel = _wheel_paths()
    triton = TRITON_FOR_PYTRITON.get(wheel, f"pytriton{wheel}")
    h = hashlib.sha256()
    inputs: dict[str, str] = {
        "nvidia-pytriton": wheel,
        "suite": SUITE,
        "debian-packages": " ".join(DEBIAN_PACKAGES),
        "python-packages": " ".join(requirements()),
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
    }
    for key in sorted(inputs):
        h.update(f"{key}={inputs[key]}\n".encode())
    for src in _backend_sources():
        h.update(f"backend {src.parent.name}/{src.name}\n".encode() + src.read_bytes())
    for rel, src in sorted(backend_module_files().items()):
        h.update(f"module {rel}\n".encode() + src.read_bytes())
    digest = h.hexdigest()[:12]
    return ImagePlan(tag=f"{IMAGE_NAME}:{triton}-{digest}", triton_version=triton, digest=digest, inputs=inputs)


# -- the engine ---------------------------------------------------------------------------------------------------

def _podman() -> str | None:
    return shutil.which("podman")


def engine_problem() -> str | None:
    """Why podman cannot build or run images here (None when it can run a container)."""
    if os.geteuid() != 0:
        return ("not running as root: tritonkit builds and runs its stand-in Triton image with rootful podman; "
                "run as root, after `sudo bash scripts/setup-containers.sh`")
    podman = _podman()
    if podman is None:
        return "podman is not installed; run `sudo bash scripts/setup-containers.sh` (podman, runc, debootstrap)"
    problem = _probe_run(podman)
    if problem:
        return f"podman cannot run a container here ({problem}); run `sudo bash scripts/setup-containers.sh`"
    return None


def _probe_image(podman: str) -> None:
    """A 2 MB image of the host's ``/bin/true`` and its libraries: lets the engine check run without a pull."""
    if subprocess.run([podman, "image", "exists", PROBE_IMAGE], capture_output=True, timeout=60).returncode == 0:
        return
    true = Path(shutil.which("true") or "/bin/true").resolve()
    libs = [true]
    done = subprocess.run(["ldd", str(true)], capture_output=True, text=True, timeout=30)
    for line in done.stdout.splitlines():
        for part in line.split():
            if part.startswith("/"):
                libs.append(Path(part))
    with tempfile.TemporaryDirectory(prefix="tritonkit-probe.") as tmp:
        for lib in libs:
            dst = Path(tmp) / str(lib).lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib.resolve(), dst)
        (Path(tmp) / "bin").mkdir(exist_ok=True)
        if not (Path(tmp) / "bin" / "true").exists():
            shutil.copy2(true, Path(tmp) / "bin" / "true")
        tar = subprocess.Popen(["tar", "-C", tmp, "--numeric-owner", "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            done = subprocess.run([podman, "import", "--quiet", "-", PROBE_IMAGE], stdin=tar.stdout,
                                  capture_output=True, text=True, timeout=120)
        finally:
            if tar.stdout:
                tar.stdout.close()  # podman gone early: tar gets EPIPE instead of blocking on a full pipe
            try:
                tar.wait(timeout=30)
            except subprocess.TimeoutExpired:
                tar.kill()
                tar.wait()
        if done.returncode != 0:
            raise ServerError(f"podman import failed: {done.stderr.strip()[-300:]}")


def _probe_run(podman: str) -> str | None:
    try:
        _probe_image(podman)
        done = subprocess.run([podman, "run", "--rm", "--network=none", PROBE_IMAGE, "/bin/true"],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError, ServerError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit {done.returncode}"
    return None


def require_engine() -> str:
    """podman's path, or MissingDependencyError saying why no container can run here."""
    problem = engine_problem()
    if problem:
        raise MissingDependencyError(problem)
    return _podman() or "podman"


def image_exists(tag: str) -> bool:
    podman = _podman()
    if podman is None:
        return False
    return subprocess.run([podman, "image", "exists", tag], capture_output=True, timeout=60).returncode == 0


def image_info(tag: str) -> dict[str, Any] | None:
    """``podman image inspect`` facts (id, size in bytes, created, user, env), or None when absent."""
    podman = _podman()
    if podman is None:
        return None
    done = subprocess.run([podman, "image", "inspect", tag], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None
    data = json.loads(done.stdout)[0]
    config = data.get("Config") or {}
    return {"id": data.get("Id", "")[:12], "size": int(data.get("Size") or 0), "created": data.get("Created"),
            "user": config.get("User"), "env": config.get("Env") or [], "labels": data.get("Labels") or {}}


# -- the build ---------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _build_lock(home: Path) -> Iterator[None]:
    """One build at a time across processes (two test workers must never build twice)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".build.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, timeout: float, **kw: Any) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if done.returncode != 0:
        tail = [ln for ln in (done.stderr or done.stdout or "").strip().splitlines() if ln.strip()][-3:]
        raise ServerError(f"{what} failed (exit {done.returncode}): {' | '.join(tail) or 'no output'}")
    return done


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first (debootstrap mounts proc, sys and devices in its target)."""
    top = os.path.abspath(path)  # not resolve(): a symlink never widens what is unmounted
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == top or point.startswith(top + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _own_real_dir(path: Path) -> bool:
    """A folder (not a symlink to one) of this user: the only kind a build removes or unmounts under, since
    as root a planted ``.x -> /`` in the cache would otherwise unmount and delete the machine."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def _remove_tree(path: Path) -> bool:
    """Remove a build folder, never through a mount left by an interrupted debootstrap (unmounted first)."""
    if not os.path.lexists(path):
        return True
    if not _own_real_dir(path):
        return False
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)
    if _mounts_under(path):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()


def _remove_stale(home: Path, say: Progress) -> None:
    """Temporary folders of builds that were killed (every build holds the lock, so none is in use now)."""
    for stale in sorted(home.glob(".*")):
        if _own_real_dir(stale) and not _remove_tree(stale):
            say(f"left {stale}: something is still mounted in it (`umount -R {stale}`, then remove it)")


def _cached(home: Path, name: str, make: Callable[[Path], None]) -> Path:
    """``home/name`` made once by ``make(tmp)`` in a temporary folder and renamed into place."""
    final = home / name
    if (final / _COMPLETE).is_file():
        return final
    tmp = Path(tempfile.mkdtemp(dir=home, prefix=f".{name}."))
    try:
        make(tmp)
        (tmp / _COMPLETE).write_text(f"{name}\n")
        _remove_tree(final)
        os.rename(tmp, final)
    finally:
        _remove_tree(tmp)
    return final


def _rootfs(home: Path, mirror: str) -> Path:
    key = hashlib.sha256(f"{SUITE} minbase {' '.join(DEBIAN_PACKAGES)}".encode()).hexdigest()[:12]

    def make(tmp: Path) -> None:
        debootstrap = shutil.which("debootstrap") or "debootstrap"
        _run([debootstrap, "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}", SUITE,
              str(tmp / "root"), mirror], f"debootstrap {SUITE} from {mirror}", timeout=1800)
        root = tmp / "root"
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/info", "usr/share/locale", "var/log"):
            path = root / junk
            if path.is_dir():
                for child in path.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    elif child.name != "lock":
                        child.unlink()

    return _cached(home, f"rootfs-{SUITE}-{key}", make) / "root"


def _site_packages(home: Path, wanted: list[str]) -> Path:
    key = hashlib.sha256(" ".join(wanted).encode()).hexdigest()[:12]

    def make(tmp: Path) -> None:
        platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(17, 37)] + ["manylinux2014_x86_64"]
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
               "--target", str(tmp / "site"), "--python-version", PYTHON_VERSION, "--implementation", "cp",
               "--only-binary=:all:"]
        for plat in platforms:
            cmd += ["--platform", plat]
        _run(cmd + wanted, f"pip install {' '.join(wanted)} for Python {PYTHON_VERSION}", timeout=1800)
        # Console scripts written by pip name the host's interpreter; the image has no use for them.
        shutil.rmtree(tmp / "site" / "bin", ignore_errors=True)

    return _cached(home, f"site-py{PYTHON_VERSION}-{key}", make) / "site"


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link ``src`` into ``dst`` (copy across file systems): the assembly never writes through the links."""
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, symlinks=True, dirs_exist_ok=True)


def _assemble(tmp: Path, rootfs: Path, site: Path, plan: ImagePlan) -> Path:
    """The image's tree in ``tmp/tree``: the cached Debian tree hard-linked (never written through), plus
    the server, its libraries, backends, Python packages, tritonkit's modules and the user."""
    server, libs, _wheel = _wheel_paths()
    tree = tmp / "tree"
    _run(["cp", "-a", "-l", str(rootfs), str(tree)], "hard-linking the cached Debian tree", timeout=600)
    opt = tree / OPT.lstrip("/")
    shutil.copytree(server, opt, ignore=shutil.ignore_patterns("python_backend_stubs", "__pycache__"))
    stub = server / "python_backend_stubs" / PYTHON_VERSION / "triton_python_backend_stub"
    if not stub.is_file():
        raise MissingDependencyError(f"{stub}: nvidia-pytriton has no python stub for Python {PYTHON_VERSION} "
                                     "(the image's Debian Python); reinstall nvidia-pytriton 0.7.0")
    shutil.copy2(stub, opt / "backends" / "python" / stub.name)
    _sync_backends(opt)
    _link_tree(libs, opt / "lib")
    site_dst = tree / SITE_DIR.lstrip("/")
    _link_tree(site, site_dst)
    for rel, src in backend_module_files().items():
        dst = site_dst / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    import compileall

    # Bytecode written now: the non-root user cannot write it next to the sources at run time.
    for folder in (site_dst / "toolkit", site_dst / "contract", opt / "backends"):
        compileall.compile_dir(str(folder), quiet=1)
    etc = tree / "etc"
    for name, line in (("passwd", f"{USER}:x:{UID}:{UID}::/home/{USER}:/bin/bash\n"), ("group", f"{USER}:x:{UID}:\n")):
        text = (etc / name).read_text()
        (etc / name).unlink()  # a hard link into the cache: replace it, never write through it
        (etc / name).write_text(text + line)
        os.chmod(etc / name, 0o644)
    (etc / "tritonkit-image").write_text("".join(f"{k}={v}\n" for k, v in sorted(plan.inputs.items())))
    home_dir = tree / "home" / USER
    home_dir.mkdir(parents=True)
    os.chown(home_dir, UID, UID)
    os.chmod(home_dir, 0o750)
    return tree


def _import(podman: str, tree: Path, plan: ImagePlan) -> str:
    """``podman import`` the assembled tree (one tar stream); returns the untagged image id."""
    changes = [f"USER {USER}", f"WORKDIR {OPT}", f"ENV PATH={_PATH}", f"ENV LD_LIBRARY_PATH={OPT}/lib",
               "ENV PYTHONDONTWRITEBYTECODE=1", f"ENV HOME=/home/{USER}",
               'CMD ["tritonserver", "--model-repository=/models"]',
               "LABEL org.opencontainers.image.title=tritonkit-tritonserver-cpu",
               f"LABEL tritonkit.triton-version={plan.triton_version}", f"LABEL tritonkit.content-hash={plan.digest}"]
    cmd = [podman, "import", "--quiet"]
    for change in changes:
        cmd += ["--change", change]
    tar = subprocess.Popen(["tar", "--numeric-owner", "-cf", "-", "-C", str(tree), "."],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        done = subprocess.run(cmd + ["-"], stdin=tar.stdout, capture_output=True, text=True, timeout=1800)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar_err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        tar.wait()
    if tar.returncode != 0:
        raise ServerError(f"tar of the image tree failed: {tar_err.strip()[-300:]}")
    if done.returncode != 0:
        raise ServerError(f"podman import failed: {done.stderr.strip()[-300:]}")
    return done.stdout.strip().splitlines()[-1]


def _older_tags(podman: str, keep: str, min_age_s: float = 1800) -> list[str]:
    """Remove this image's older tags (content hashes of earlier trees) once they are ``min_age_s`` old.

    The age spares a test session still running on the tag it computed before a source edit; podman
    refuses to remove an image a container uses, and that one stays too.
    """
    done = subprocess.run([podman, "images", "--format", "json", IMAGE_NAME], capture_output=True, text=True,
                          timeout=120)
    try:
        rows = json.loads(done.stdout or "[]")
    except ValueError:
        return []
    removed = []
    for row in rows:
        if time.time() - float(row.get("Created") or 0) < min_age_s:
            continue
        for tag in row.get("Names") or []:
            ours = re.fullmatch(re.escape(IMAGE_NAME) + r":[0-9.a-z]+-[0-9a-f]{12}", tag)
            if tag != keep and ours and subprocess.run([podman, "rmi", tag], capture_output=True,
                                                       timeout=120).returncode == 0:
                removed.append(tag)
    return removed


def _require_build_tools() -> str:
    podman = require_engine()
    if not shutil.which("debootstrap"):
        raise MissingDependencyError("debootstrap is not installed; run `sudo bash scripts/setup-containers.sh`")
    if not shutil.which("tar"):
        raise MissingDependencyError("tar is not installed; install it with your system's package manager")
    return podman


def build_image(*, force: bool = False, progress: Progress | None = None, prune: bool = True) -> BuildResult:
    """Build the stand-in image unless this exact one exists; returns its tag.

    With ``prune``, a build then removes cached trees it did not use and stand-in tags over 30 minutes old.

    Raises:
        MissingDependencyError: not root, no podman, podman cannot run a container, or no debootstrap.
        ServerError: a build step failed (its last lines are in the message); nothing is tagged then.
    """
    say = progress or (lambda _line: None)
    started = time.monotonic()
    plan = plan_image()
    if not force and image_exists(plan.tag):
        return BuildResult(plan.tag, built=False, seconds=time.monotonic() - started)
    podman = _require_build_tools()
    home = image_home()
    steps: dict[str, float] = {}
    with _build_lock(home):
        if not force and image_exists(plan.tag):  # another process built it while we waited
            return BuildResult(plan.tag, built=False, seconds=time.monotonic() - started)
        _remove_stale(home, say)

        def step(name: str, label: str, fn: Callable[[], Any]) -> Any:
            say(f"[{len(steps) + 1}/4] {label} ...")
            t0 = time.monotonic()
            out = fn()
            steps[name] = round(time.monotonic() - t0, 1)
            say(f"[{len(steps)}/4] {label}: {steps[name]:.1f}s")
            return out

        mirror = debian_mirror()
        rootfs = step("rootfs", f"Debian {SUITE} root filesystem (debootstrap from {mirror}; cached)",
                      lambda: _rootfs(home, mirror))
        wanted = requirements()
        site = step("python", f"Python {PYTHON_VERSION} packages {' '.join(wanted)} (cached)",
                    lambda: _site_packages(home, wanted))
        tmp = Path(tempfile.mkdtemp(dir=home, prefix=".assemble."))
        image_id = ""
        try:
            tree = step("assemble", "Triton server, backends and user", lambda: _assemble(tmp, rootfs, site, plan))
            image_id = step("import", f"podman import as {plan.tag}", lambda: _import(podman, tree, plan))
            previous = (image_info(plan.tag) or {}).get("id")
            _run([podman, "tag", image_id, plan.tag], f"podman tag {plan.tag}", timeout=120)
            if previous and not image_id.startswith(previous):  # --force: the untagged old image goes
                subprocess.run([podman, "rmi", previous], capture_output=True, timeout=120)
            image_id = ""
        finally:
            _remove_tree(tmp)
            if image_id:  # imported but not tagged: leave nothing behind
                subprocess.run([podman, "rmi", "--force", image_id], capture_output=True, timeout=120)
        for old in sorted(home.glob("rootfs-*")) + sorted(home.glob("site-*")) if prune else []:
            if old not in (rootfs.parent, site.parent) and _remove_tree(old):
                say(f"removed the unused cache {old.name}")
        for old in _older_tags(podman, plan.tag) if prune else []:
            say(f"removed the older stand-in {old} (over 30 minutes old)")
    return BuildResult(plan.tag, built=True, seconds=round(time.monotonic() - started, 1), steps=steps)
