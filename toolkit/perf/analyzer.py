"""Load a running Triton server with the real ``perf_analyzer`` and keep its CSV and log.

perf_analyzer ships inside the ``tritonclient`` Linux wheel; it links ``libb64.so.0d`` (Debian
package ``libb64-0d``) and ``libcudart.so.12`` (PyPI ``nvidia-cuda-runtime-cu12``), which this
module puts on ``LD_LIBRARY_PATH``. ``TRITONKIT_PERF_ANALYZER`` names another binary.

Each concurrency level is its own perf_analyzer invocation, so one failed or unstable level never
hides the others: a level that does not stabilize is kept as an *unstable* row (from its last
measurement window, printed with ``-v``), a level that fails is kept in ``PerfRun.failures``.
perf_analyzer's stdout also carries Triton's own statistics for the window (inference count and
execution count), which give the batch size the server actually formed.
"""

from __future__ import annotations

import csv
import ctypes.util
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import MissingDependencyError, ProfileError, UsageError
from contract.fileio import atomic_write_text

INSTALL_HINT = "install it with 'pip install \"tritonclient[all]==2.50.0\"' (or run 'make setup')"
PERF_ANALYZER_ENV = "TRITONKIT_PERF_ANALYZER"

# Settings suited to a busy 2-core machine: windows long enough to hold a few hundred requests,
# a loose stability band (client and server share the cores), and few trials so a sweep ends.
DEFAULT_MEASUREMENT_MS = 1500
DEFAULT_STABILITY_PCT = 25
DEFAULT_MAX_TRIALS = 6
DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16, 32)
DEFAULT_BATCHES = (1, 8)


def perf_analyzer_path() -> Path:
    """The perf_analyzer binary: ``$TRITONKIT_PERF_ANALYZER``, next to the running Python, or on PATH."""
    override = os.environ.get(PERF_ANALYZER_ENV)
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return Path(override)
        raise MissingDependencyError(
            f"perf_analyzer not found at {PERF_ANALYZER_ENV}={override}; unset it or {INSTALL_HINT}"
        )
    here = Path(sys.executable).parent / "perf_analyzer"
    if here.is_file():
        return here
    found = shutil.which("perf_analyzer")
    if found:
        return Path(found)
    raise MissingDependencyError(f"perf_analyzer not found next to {sys.executable} or on PATH; {INSTALL_HINT}")


def perf_env() -> dict[str, str]:
    """Environment in which perf_analyzer finds libcudart.so.12 and libb64."""
    env = dict(os.environ)
    libs = []
    try:
        import nvidia.cuda_runtime

        libs.append(str(Path(nvidia.cuda_runtime.__path__[0]) / "lib"))
    except ImportError:
        pass
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libs)
    return env


def check_perf_analyzer() -> Path:
    """Fail with one line naming what is missing (binary, libb64, libcudart)."""
    path = perf_analyzer_path()
    if ctypes.util.find_library("b64") is None and not Path("/lib/x86_64-linux-gnu/libb64.so.0d").exists():
        raise MissingDependencyError(
            "perf_analyzer needs libb64.so.0d; install it with 'apt-get install libb64-0d' (Debian/Ubuntu)"
        )
    try:
        proc = subprocess.run([str(path), "--version"], env=perf_env(), capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise MissingDependencyError(f"perf_analyzer at {path} cannot run ({exc.strerror}); {INSTALL_HINT}") from None
    if "error while loading shared libraries" in proc.stderr:
        missing = proc.stderr.split("error while loading shared libraries:")[1].split(":")[0].strip()
        raise MissingDependencyError(
            f"perf_analyzer cannot load {missing}; install nvidia-cuda-runtime-cu12 (pip) and libb64-0d (apt)"
        )
    return path


@dataclass
class PerfRow:
    """One measured point of a perf_analyzer sweep (times in microseconds).

    ``stable`` is False when perf_analyzer could not stabilize the level: the row then holds the
    last window's throughput and average latency only (percentiles are NaN).
    ``formed_batch`` is Triton's inference count / execution count for the window: the batch size
    the server's dynamic batcher actually formed.
    """

    concurrency: int
    batch_size: int
    infer_per_sec: float  # samples/s: perf_analyzer counts batch x requests
    client_send_us: float
    network_us: float
    server_queue_us: float
    server_compute_input_us: float
    server_compute_infer_us: float
    server_compute_output_us: float
    client_recv_us: float
    p50_us: float
    p90_us: float
    p95_us: float
    p99_us: float
    avg_latency_us: float = 0.0
    stable: bool = True
    formed_batch: float = 0.0
    server_inference_count: int = 0
    server_execution_count: int = 0
    server_overhead_us: float = 0.0

    @property
    def requests_per_sec(self) -> float:
        return self.infer_per_sec / max(self.batch_size, 1)


@dataclass
class PerfRun:
    """A sweep of one model (version) at one batch size: commands, rows, failures, CSVs and log."""

    model: str
    command: list[str]
    rows: list[PerfRow] = field(default_factory=list)
    csv_path: str = ""
    log_path: str = ""
    ok: bool = True
    error: str = ""
    version: str = ""
    batch_size: int = 1
    protocol: str = "grpc"
    label: str = ""
    shapes: dict[str, list[int]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)  # one per concurrency level, in order

    def __post_init__(self) -> None:
        if not self.label:
            self.label = f"{self.model}" + (f":{self.version}" if self.version else "") + f" b{self.batch_size}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r in d["rows"]:
            r["requests_per_sec"] = r["infer_per_sec"] / max(r["batch_size"], 1)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PerfRun:
        fields = {f for f in PerfRow.__dataclass_fields__}
        rows = [PerfRow(**{k: v for k, v in r.items() if k in fields}) for r in d.get("rows", [])]
        own = {f for f in cls.__dataclass_fields__} - {"rows"}
        return cls(rows=rows, **{k: v for k, v in d.items() if k in own})

    def saturation(self) -> PerfRow | None:
        """The row with the highest throughput (stable rows preferred)."""
        stable = [r for r in self.rows if r.stable] or self.rows
        return max(stable, key=lambda r: r.infer_per_sec) if stable else None


_COLUMNS = {
    "infer_per_sec": "Inferences/Second", "client_send_us": "Client Send",
    "network_us": "Network+Server Send/Recv", "server_queue_us": "Server Queue",
    "server_compute_input_us": "Server Compute Input", "server_compute_infer_us": "Server Compute Infer",
    "server_compute_output_us": "Server Compute Output", "client_recv_us": "Client Recv",
    "p50_us": "p50 latency", "p90_us": "p90 latency", "p95_us": "p95 latency", "p99_us": "p99 latency",
}


def parse_csv(path: str | os.PathLike[str], batch_size: int = 1) -> list[PerfRow]:
    """Rows of a perf_analyzer ``-f`` CSV, sorted by concurrency.

    Raises:
        ProfileError: unreadable file, a CSV that is not perf_analyzer's, or one without rows
            (what a failed run leaves).
    """
    try:
        with open(path, newline="") as fh:
            records = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ProfileError(f"{path}: cannot read perf_analyzer CSV ({reason})") from None
    rows = []
    for rec in records:
        try:
            values = {k: float(rec[col]) for k, col in _COLUMNS.items()}
            rows.append(PerfRow(concurrency=int(float(rec["Concurrency"])), batch_size=batch_size,
                                avg_latency_us=float(rec.get("Avg latency") or 0.0), **values))
        except (KeyError, ValueError, TypeError) as exc:
            raise ProfileError(
                f"{path}: not a perf_analyzer CSV (column {exc} missing or not a number); "
                "the run probably failed: see its log"
            ) from None
    if not rows:
        raise ProfileError(f"{path}: perf_analyzer CSV has no measurements; the run failed: see its log")
    return sorted(rows, key=lambda r: r.concurrency)


_PASS = re.compile(r"Pass \[\d+\] throughput: ([\d.]+) infer/sec\. (Avg|p\d+) latency: (\d+) usec")
_INFER_COUNT = re.compile(r"Inference count: (\d+)")
_EXEC_COUNT = re.compile(r"Execution count: (\d+)")
_OVERHEAD = re.compile(r"overhead (\d+) usec")


def server_counts(output: str) -> tuple[int, int, float]:
    """(inference count, execution count, overhead us) from perf_analyzer's server section."""
    inf = _INFER_COUNT.findall(output)
    exe = _EXEC_COUNT.findall(output)
    ovh = _OVERHEAD.findall(output)
    return (int(inf[-1]) if inf else 0, int(exe[-1]) if exe else 0, float(ovh[-1]) if ovh else 0.0)


def unstable_row(output: str, concurrency: int, batch_size: int) -> PerfRow | None:
    """The last measurement window of a level that did not stabilize (percentiles unknown)."""
    passes = _PASS.findall(output)
    if not passes:
        return None
    tput, kind, lat = float(passes[-1][0]), passes[-1][1], float(passes[-1][2])
    nan = math.nan
    return PerfRow(concurrency, batch_size, tput, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                   lat if kind == "p99" else nan, avg_latency_us=lat if kind == "Avg" else nan, stable=False)


def _first_error(out: str) -> str:
    """The line that says why: the server's own error (``Thread [0] had error: ...``) before
    perf_analyzer's generic ones such as "No valid requests recorded"."""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    for ln in lines:
        if "had error:" in ln:
            return "server error: " + ln.split("had error:", 1)[1].strip()
    for ln in lines:
        low = ln.lower()
        if "error" in low or "failed" in low or "unable" in low:
            return ln
    return lines[-1] if lines else "no output"


# -- the sweep -------------------------------------------------------------------------------------
def run_perf_analyzer(
    model: str,
    url: str,
    out_dir: str | os.PathLike[str],
    *,
    protocol: str = "grpc",
    concurrency: list[int] | tuple[int, ...] = DEFAULT_CONCURRENCY,
    batch_size: int = 1,
    measurement_ms: int = DEFAULT_MEASUREMENT_MS,
    stability_pct: int = DEFAULT_STABILITY_PCT,
    max_trials: int = DEFAULT_MAX_TRIALS,
    shapes: dict[str, list[int]] | None = None,
    version: str = "",
    timeout: float = 300.0,
    headers: dict[str, str] | None = None,
    label: str = "",
    progress: Any = None,
    input_data: str | os.PathLike[str] | None = None,
) -> PerfRun:
    """One perf_analyzer sweep over concurrency levels at one batch size; CSVs and log kept.

    ``progress(concurrency)`` is called as each level starts (for a progress bar).
    ``input_data`` is a perf_analyzer ``--input-data`` JSON file naming exactly the inputs to send
    (a model whose inputs are all optional, such as the image ensemble, wants exactly one).

    Every level is attempted; an unstable level becomes an ``stable=False`` row, a failed one an
    entry in ``failures`` (and ``ok=False``). Nothing is dropped.
    """
    binary = check_perf_analyzer()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    conc = sorted(set(int(c) for c in concurrency))
    if not conc or conc[0] < 1:
        raise UsageError(f"concurrency levels {list(concurrency)} must be whole numbers >= 1, e.g. 1,2,4,8")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{model}" + (f"-v{version}" if version else ""))
    tag = f"{safe}-b{batch_size}"
    log_path = out_dir / f"{tag}.log"
    run = PerfRun(model=model, command=[], log_path=str(log_path), version=version, batch_size=batch_size,
                  protocol=protocol, label=label, shapes=dict(shapes or {}))
    logs: list[str] = []
    csvs: list[Path] = []
    unstable: list[int] = []
    for c in conc:
        if progress is not None:
            progress(c)
        csv_path = out_dir / f"{tag}-c{c}.csv"
        csv_path.unlink(missing_ok=True)
        cmd = [
            str(binary), "-m", model, "-u", url, "-i", protocol, "-b", str(batch_size),
            "--concurrency-range", f"{c}:{c}:1",
            "--measurement-interval", str(measurement_ms), "-s", str(stability_pct), "-r", str(max_trials),
            # Stability on average latency (not p99): p99 of short windows on 2 busy cores never settles.
            "-f", str(csv_path), "--verbose-csv", "-v",
        ]
        if version:
            cmd += ["-x", version]
        if input_data is not None:
            cmd += ["--input-data", str(input_data)]
        else:
            for name, dims in (shapes or {}).items():
                cmd += ["--shape", f"{name}:{','.join(str(d) for d in dims)}"]
        for key, value in (headers or {}).items():
            cmd += ["-H", f"{key}:{value}"]
        run.command = cmd
        run.commands.append(cmd)
        try:
            proc = subprocess.run(cmd, env=perf_env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            logs.append(" ".join(cmd) + f"\n\ntimed out after {timeout}s\n")
            run.failures.append({"concurrency": c, "error": f"did not finish within {timeout:.0f}s"})
            continue
        out = proc.stdout + proc.stderr
        logs.append(" ".join(cmd) + "\n\n" + out)
        inf, exe, overhead = server_counts(out)
        if proc.returncode == 0 and csv_path.is_file():
            try:
                rows = parse_csv(csv_path, batch_size)
            except ProfileError as exc:
                run.failures.append({"concurrency": c, "error": str(exc)})
                continue
            for r in rows:
                r.server_inference_count, r.server_execution_count = inf, exe
                r.formed_batch = inf / exe if exe else 0.0
                r.server_overhead_us = overhead
            csvs.append(csv_path)
            run.rows.extend(rows)
        elif "stable measurement" in out:
            row = unstable_row(out, c, batch_size)
            unstable.append(c)
            if row is not None:
                run.rows.append(row)
            else:
                run.failures.append({"concurrency": c, "error": "unstable and no window completed"})
        else:
            run.failures.append({"concurrency": c, "error": f"perf_analyzer exited {proc.returncode}: "
                                                             f"{_first_error(out)}"})
    atomic_write_text(log_path, "\n\n".join(logs))
    run.csv_path = ",".join(str(p) for p in csvs)
    run.rows.sort(key=lambda r: r.concurrency)
    notes = []
    if run.failures:
        run.ok = False
        notes.append("; ".join(f"concurrency {f['concurrency']}: {f['error']}" for f in run.failures))
    if unstable:
        notes.append(f"concurrency {','.join(map(str, unstable))} did not stabilize (last window kept, marked "
                     "unstable); raise --measurement-ms or --stability-pct")
    run.error = " | ".join(notes)
    return run
