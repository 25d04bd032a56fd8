"""Load a running Triton server with the real ``perf_analyzer`` and keep its CSV.

perf_analyzer ships inside the ``tritonclient`` Linux wheel; it links ``libb64.so.0d`` (Debian
package ``libb64-0d``) and ``libcudart.so.12`` (PyPI ``nvidia-cuda-runtime-cu12``), which this
module puts on ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import csv
import ctypes.util
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import MissingDependencyError, ProfileError

INSTALL_HINT = "install it with 'pip install \"tritonclient[all]==2.50.0\"' (or run 'make repo')"


def perf_analyzer_path() -> Path:
    """The perf_analyzer binary next to the running Python, or on PATH."""
    here = Path(sys.executable).parent / "perf_analyzer"
    if here.is_file():
        return here
    found = shutil.which("perf_analyzer")
    if found:
        return Path(found)
    raise MissingDependencyError(f"perf_analyzer not found; {INSTALL_HINT}")


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
    proc = subprocess.run([str(path), "--version"], env=perf_env(), capture_output=True, text=True)
    if "error while loading shared libraries" in proc.stderr:
        missing = proc.stderr.split("error while loading shared libraries:")[1].split(":")[0].strip()
        raise MissingDependencyError(
            f"perf_analyzer cannot load {missing}; install nvidia-cuda-runtime-cu12 (pip) and libb64-0d (apt)"
        )
    return path


@dataclass
class PerfRow:
    """One measured point of a perf_analyzer sweep (times in microseconds)."""

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

    @property
    def requests_per_sec(self) -> float:
        return self.infer_per_sec / max(self.batch_size, 1)


@dataclass
class PerfRun:
    """A perf_analyzer invocation: the exact command, its rows, and where CSV and log were kept."""

    model: str
    command: list[str]
    rows: list[PerfRow] = field(default_factory=list)
    csv_path: str = ""
    log_path: str = ""
    ok: bool = True
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r in d["rows"]:
            r["requests_per_sec"] = r["infer_per_sec"] / max(r["batch_size"], 1)
        return d


def parse_csv(path: str | os.PathLike[str], batch_size: int = 1) -> list[PerfRow]:
    """Rows of a perf_analyzer ``-f`` CSV, sorted by concurrency."""
    try:
        with open(path, newline="") as fh:
            records = list(csv.DictReader(fh))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read perf_analyzer CSV ({exc.strerror})") from None
    rows = []
    for rec in records:
        try:
            rows.append(PerfRow(
                concurrency=int(float(rec["Concurrency"])),
                batch_size=batch_size,
                infer_per_sec=float(rec["Inferences/Second"]),
                client_send_us=float(rec["Client Send"]),
                network_us=float(rec["Network+Server Send/Recv"]),
                server_queue_us=float(rec["Server Queue"]),
                server_compute_input_us=float(rec["Server Compute Input"]),
                server_compute_infer_us=float(rec["Server Compute Infer"]),
                server_compute_output_us=float(rec["Server Compute Output"]),
                client_recv_us=float(rec["Client Recv"]),
                p50_us=float(rec["p50 latency"]),
                p90_us=float(rec["p90 latency"]),
                p95_us=float(rec["p95 latency"]),
                p99_us=float(rec["p99 latency"]),
                avg_latency_us=float(rec.get("Avg latency") or 0.0),
            ))
        except (KeyError, ValueError) as exc:
            raise ProfileError(
                f"{path}: not a perf_analyzer CSV (column {exc} missing or not a number); "
                "the run probably failed: see its log"
            ) from None
    if not rows:
        raise ProfileError(f"{path}: perf_analyzer CSV has no measurements; the run failed: see its log")
    return sorted(rows, key=lambda r: r.concurrency)


def run_perf_analyzer(
    model: str,
    url: str,
    out_dir: str | os.PathLike[str],
    *,
    protocol: str = "grpc",
    concurrency: list[int] | tuple[int, ...] = (1, 2, 4, 8),
    batch_size: int = 1,
    measurement_ms: int = 1000,
    stability_pct: int = 15,
    max_trials: int = 6,
    shapes: dict[str, list[int]] | None = None,
    version: str = "",
    timeout: float = 300.0,
) -> PerfRun:
    """One perf_analyzer sweep over concurrency levels at one batch size; CSV and log kept."""
    binary = check_perf_analyzer()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    conc = sorted(set(int(c) for c in concurrency))
    step = _step(conc)
    # A uniform range is one invocation; a geometric list (1,2,4,8) is one invocation per level.
    ranges = [(conc[0], conc[-1], step)] if step else [(c, c, 1) for c in conc]
    tag = f"{model}-b{batch_size}"
    log_path = out_dir / f"{tag}.log"
    run = PerfRun(model=model, command=[], log_path=str(log_path))
    logs: list[str] = []
    csvs: list[Path] = []
    for lo, hi, st in ranges:
        csv_path = out_dir / (f"{tag}.csv" if len(ranges) == 1 else f"{tag}-c{lo}.csv")
        cmd = [
            str(binary), "-m", model, "-u", url, "-i", protocol, "-b", str(batch_size),
            "--concurrency-range", f"{lo}:{hi}:{st}",
            "--measurement-interval", str(measurement_ms), "-s", str(stability_pct), "-r", str(max_trials),
            "--percentile", "99", "-f", str(csv_path), "--verbose-csv",
        ]
        if version:
            cmd += ["-x", version]
        for name, dims in (shapes or {}).items():
            cmd += ["--shape", f"{name}:{','.join(str(d) for d in dims)}"]
        run.command = cmd
        try:
            proc = subprocess.run(cmd, env=perf_env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            logs.append(" ".join(cmd) + f"\n\ntimed out after {timeout}s\n")
            run.ok, run.error = False, f"perf_analyzer did not finish within {timeout:.0f}s (concurrency {lo})"
            break
        out = proc.stdout + proc.stderr
        logs.append(" ".join(cmd) + "\n\n" + out)
        if proc.returncode != 0 or not csv_path.is_file():
            lines = [ln for ln in out.splitlines() if ln.strip()]
            msg = next((ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()),
                       lines[-1] if lines else "")
            run.ok, run.error = False, f"perf_analyzer exited {proc.returncode} at concurrency {lo}: {msg.strip()}"
            break
        if "unstable" in out.lower() or "not stable" in out.lower():
            run.error = "some measurements did not stabilize; see the log"
        csvs.append(csv_path)
        run.rows.extend(parse_csv(csv_path, batch_size))
    log_path.write_text("\n\n".join(logs))
    run.csv_path = ",".join(str(c) for c in csvs)
    run.rows.sort(key=lambda r: r.concurrency)
    return run


def _step(conc: list[int]) -> int:
    """The common step of an arithmetic list of levels, or 0 when the steps differ."""
    if len(conc) == 1:
        return 1
    steps = {b - a for a, b in zip(conc, conc[1:])}
    return steps.pop() if len(steps) == 1 else 0
