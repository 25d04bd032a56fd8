"""Triton itself as the judge of a model repository: load every model in a throw-away embedded server.

The static validator (:mod:`toolkit.repository.validate`) predicts what Triton will do with a config;
:func:`load_verdicts` asks Triton. It starts a private ``tritonserver`` (loopback only, free ports, the
admin header, explicit model control with nothing loaded at start, so one refused model never stops the
others), loads each model through the repository API, records Triton's own answer, unloads it and
stops the server it started. Config auto-completion is on (Triton's default) unless ``strict_config``.

Runtimes the embedded server lacks (TensorRT, PyTorch, TensorFlow, OpenVINO) are served by
:mod:`toolkit.serve.standin` in this server's own backend folder: Triton's core still judges those
configs, the stand-in accepts any model whose file exists. Models of an ensemble are loaded in order
(steps first) by one worker; unrelated models load concurrently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from contract.errors import ServerError
from toolkit.repository.validate.problem import Problem
from toolkit.serve.embedded import EmbeddedServer, check_repository, http_get
from toolkit.serve.install import prepare_triton
from toolkit.serve.interrupts import interrupts_raise
from toolkit.serve.ports import free_port
from toolkit.serve.standin import STANDIN_BACKENDS

_STANDIN_SOURCE = Path(__file__).resolve().parent / "standin.py"


@dataclass(frozen=True)
class Verdict:
    """What Triton did with one model folder: loaded or not, its own error line, and how long it took."""

    model: str
    loaded: bool
    error: str
    seconds: float
    standin: bool = False  # loaded by a stand-in backend, which never reads the model file

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def model_names(repository: Path) -> list[str]:
    """Every top-level folder: Triton takes each one as a model (files at the top are ignored)."""
    return sorted(p.name for p in repository.iterdir() if p.is_dir())


def _steps(repository: Path, name: str) -> list[str]:
    """The models an ensemble's steps name ([] for any other model, or a config that does not parse)."""
    from toolkit.repository.validate.config import load_entry

    cfg = load_entry(name, repository / name).config
    if cfg is None or cfg.platform != "ensemble":
        return []
    return [s.model_name for s in cfg.ensemble_scheduling.step if s.model_name]


def load_groups(repository: Path, names: list[str]) -> list[list[str]]:
    """Models that must load in one worker, in load order; unrelated models alone.

    Loading an ensemble makes Triton load its steps too, so an ensemble and its steps never load in
    different workers (one's unload would race the other's load), steps first.
    """
    present = set(names)
    steps = {n: [s for s in _steps(repository, n) if s in present] for n in names}
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for n, used in steps.items():
        for s in used:
            parent[root(s)] = root(n)
    depth: dict[str, int] = {}

    def depth_of(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n not in depth:
            below = [depth_of(s, seen | {n}) for s in steps[n] if s not in seen | {n}]
            depth[n] = 1 + max(below, default=-1)
        return depth[n]

    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return [sorted(g, key=lambda n: (depth_of(n), n)) for g in groups.values()]


def backend_folder(dest: Path) -> tuple[Path, set[str]]:
    """Lay out the throw-away server's backends in ``dest``: the install's own, plus stand-ins for the rest
    (their names are returned).

    The python backend is linked, not copied; tritonkit's Python-based backends are copied; each stand-in
    is :mod:`toolkit.serve.standin` as ``<backend>/model.py``, which Triton's core resolves as a
    Python-based backend for that name (and for the platforms that name it).
    """
    install = prepare_triton()
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(install.backend_dir.iterdir()):
        if src.name == "python":
            os.symlink(src, dest / "python", target_is_directory=True)
        elif (src / "model.py").is_file():
            (dest / src.name).mkdir()
            shutil.copyfile(src / "model.py", dest / src.name / "model.py")
    standins = {name for name in STANDIN_BACKENDS if not (dest / name).exists()}
    for name in standins:
        (dest / name).mkdir()
        shutil.copyfile(_STANDIN_SOURCE, dest / name / "model.py")
    return dest, standins


def _post(server: EmbeddedServer, path: str, timeout: float) -> tuple[int, str]:
    """POST to the server's repository API with its admin header; (status, Triton's error text or "")."""
    url = f"http://{server.http_url}{path}"
    req = urllib.request.Request(url, data=b"{}", method="POST",
                                 headers={**server.admin_headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - loopback URL only
            return r.status, ""
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode(errors="replace")
    except TimeoutError:
        return 0, f"no answer from Triton within {timeout:g} s"
    except (urllib.error.URLError, OSError) as exc:
        return 0, f"Triton did not answer ({getattr(exc, 'reason', exc)})"
    try:
        text = str(json.loads(body).get("error", body))
    except (ValueError, AttributeError):
        text = body
    return status, text


def _first_line(text: str) -> str:
    """Triton's reason: its first line (a Python model's traceback follows it)."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())


_POLL_FAILED = re.compile(r"Poll failed for model directory '([^']+)': (.*?)\"?$")


def _with_poll_reasons(verdicts: dict[str, Verdict], log_text: str) -> dict[str, Verdict]:
    """The repository API says only "failed to poll from model repository"; Triton's log says why."""
    reasons: dict[str, str] = {}
    for line in log_text.splitlines():
        m = _POLL_FAILED.search(line)
        if m:
            reasons.setdefault(m.group(1), m.group(2).split("\\n", 1)[0].strip())
    return {n: replace(v, error=f"{v.error}: {reasons[n]}")
            if not v.loaded and "failed to poll" in v.error and n in reasons else v
            for n, v in verdicts.items()}


def _served_by_standin(server: EmbeddedServer, name: str, standins: set[str]) -> bool:
    """Whether a loaded model runs on a stand-in: its file was never read, so "accepted" says less."""
    status, body = http_get(f"http://{server.http_url}/v2/models/{urllib.parse.quote(name, safe='')}/config",
                            timeout=10.0)
    try:
        config = json.loads(body) if status == 200 else {}
    except ValueError:
        return False
    return config.get("backend") in standins and config.get("runtime") == "model.py"


def _judge_group(server: EmbeddedServer, group: list[str], timeout_s: float, standins: set[str]) -> list[Verdict]:
    """Load each model of ``group`` in order, then unload them all (last first)."""
    verdicts = []
    for name in group:
        quoted = urllib.parse.quote(name, safe="")
        t0 = time.monotonic()
        status, text = _post(server, f"/v2/repository/models/{quoted}/load", timeout_s)
        seconds = round(time.monotonic() - t0, 3)
        if status == 200:
            verdicts.append(Verdict(name, True, "", seconds, _served_by_standin(server, name, standins)))
        else:
            verdicts.append(Verdict(name, False, _first_line(text), seconds))
    for name in reversed(group):  # an accepted model must not keep its python stubs running
        _post(server, f"/v2/repository/models/{urllib.parse.quote(name, safe='')}/unload", timeout_s)
    return verdicts


def _server(repository: Path, backends: Path, log: Path, workers: int, strict_config: bool) -> EmbeddedServer:
    return EmbeddedServer(
        repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
        model_control="explicit", load_at_start=False, backend_directory=backends, log_path=log,
        strict_config=strict_config,
        extra_args=(f"--model-load-thread-count={2 * workers}", f"--http-thread-count={workers + 2}",
                    "--log-verbose=0"),
    )


_NO_ANSWER = ("no answer from Triton", "Triton did not answer")
_SIGNAL = re.compile(r"^Signal \((\d+)\) received", re.MULTILINE)


def _crash(server: EmbeddedServer) -> str | None:
    """How the server died, if it did: Triton prints ``Signal (11) received.`` and may then hang."""
    if not server.is_running():
        return "it exited"
    m = _SIGNAL.search(server.read_log())
    return f"signal {m.group(1)}" if m else None


def _start(root: Path, backends: Path, log: Path, workers: int, strict_config: bool,
           timeout_s: float) -> EmbeddedServer:
    for attempt in range(3):  # a free port can be taken between choosing it and Triton binding it
        server = _server(root, backends, log, workers, strict_config)
        try:
            return server.start(timeout=max(60.0, timeout_s))
        except ServerError as exc:
            if attempt == 2 or "in use" not in str(exc):
                raise
    raise AssertionError("unreachable")


def _judge_all(server: EmbeddedServer, groups: list[list[str]], workers: int, timeout_s: float,
               standins: set[str], progress: Callable[[Verdict], None] | None,
               ) -> tuple[dict[str, Verdict], list[list[str]], str | None]:
    """Judge ``groups`` on one server: (verdicts, groups to judge again, how it crashed) -- nothing to judge
    again unless it crashed. A group whose load got no answer is final only if the server lived."""
    verdicts: dict[str, Verdict] = {}
    unanswered: dict[int, list[Verdict]] = {}
    pool = ThreadPoolExecutor(max_workers=min(workers, len(groups)), thread_name_prefix="load-check")
    futures = {pool.submit(_judge_group, server, g, timeout_s, standins): i for i, g in enumerate(groups)}
    pending: set[Future[list[Verdict]]] = set(futures)
    crash = None
    try:
        while pending and crash is None:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                got = fut.result()
                if any(v.error.startswith(_NO_ANSWER) for v in got):
                    unanswered[futures[fut]] = got
                    continue
                for v in got:
                    verdicts[v.model] = v
                    if progress is not None:
                        progress(v)
            crash = _crash(server)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if crash is not None:
        again = sorted(unanswered) + sorted(futures[f] for f in pending)
        return _with_poll_reasons(verdicts, server.read_log()), [groups[i] for i in again], crash
    for got in unanswered.values():
        for v in got:
            verdicts[v.model] = v
            if progress is not None:
                progress(v)
    return _with_poll_reasons(verdicts, server.read_log()), [], None


def load_verdicts(
    repository: str | os.PathLike[str],
    *,
    strict_config: bool = False,
    timeout_s: float = 120.0,
    workers: int | None = None,
    names: Iterable[str] | None = None,
    progress: Callable[[Verdict], None] | None = None,
) -> dict[str, Verdict]:
    """Model folder name -> Triton's verdict, for every model in ``repository`` (or just ``names``).

    ``timeout_s`` bounds each model's load; ``workers`` loads that many groups at once (default: 16, or
    four per CPU core where that is more: a python model's load mostly waits, a second per stub it
    stops); ``progress`` is called with each verdict as it comes. Should Triton crash (2.51 did, rarely,
    with sequence models loading at once), a fresh server judges the models it left, with half the
    workers, up to three times. The server is stopped on return, on any error and on Ctrl-C (SIGTERM
    and SIGHUP too). The repository's Python models run (their ``initialize``).

    Raises:
        ServerError: the repository is not a folder, the throw-away server did not start, or it crashed
            four times.
    """
    root = Path(repository)
    check_repository(root)
    try:
        wanted = model_names(root) if names is None else sorted(set(names))
    except OSError as exc:
        raise ServerError(f"model repository {root} cannot be read ({exc.strerror}); check its permissions") from None
    if not wanted:
        return {}
    workers = max(1, workers or max(16, 4 * (os.cpu_count() or 1)))
    groups = sorted(load_groups(root, wanted), key=len, reverse=True)  # the longest chains start first
    scratch = Path(tempfile.mkdtemp(prefix="tritonkit-load-check-"))
    keep_log = False
    verdicts: dict[str, Verdict] = {}
    try:
        with interrupts_raise():
            backends, standins = backend_folder(scratch / "backends")
            for run in range(4):
                log = scratch / f"triton-{run}.log"
                try:
                    server = _start(root, backends, log, workers, strict_config, timeout_s)
                except ServerError:
                    keep_log = True
                    raise
                try:
                    got, groups, crash = _judge_all(server, groups, workers, timeout_s, standins, progress)
                finally:
                    server.stop(timeout=4)  # throw-away: a short grace, then its stubs are killed
                verdicts.update(got)
                if not groups:
                    break
                workers = max(1, workers // 2)
            else:
                keep_log = True
                left = [n for g in groups for n in g]
                raise ServerError(f"Triton crashed four times ({crash}) while loading {', '.join(left[:5])}"
                                  f"{' and others' if len(left) > 5 else ''} (log: {log})")
    finally:
        if not keep_log:
            shutil.rmtree(scratch, ignore_errors=True)
    return {n: verdicts[n] for n in wanted if n in verdicts}


@dataclass(frozen=True)
class Comparison:
    """One model: the static validator's verdict next to Triton's."""

    model: str
    static: str  # "accepted" | "refused"
    triton: Verdict

    @property
    def triton_verdict(self) -> str:
        return "accepted" if self.triton.loaded else "refused"

    @property
    def agree(self) -> bool:
        return self.static == self.triton_verdict

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "static": self.static, "triton": self.triton_verdict, "agree": self.agree,
                "triton_error": self.triton.error, "standin": self.triton.standin, "seconds": self.triton.seconds}


def compare(problems: Iterable[Problem], verdicts: dict[str, Verdict]) -> list[Comparison]:
    """Each judged model's static verdict (refused when the validator found an error in it) beside Triton's."""
    refused = {p.model for p in problems if p.is_error}
    return [Comparison(n, "refused" if n in refused else "accepted", v) for n, v in sorted(verdicts.items())]
