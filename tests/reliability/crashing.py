"""Kill ``tritonkit repo add`` at random moments while a polling Triton watches the repository.

Shared by the CI test (a dozen runs) and ``benchmarks/bench_soak.py --publish-crashes`` style runs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.repository import verify_version, version_numbers

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime: 'untouched' means this dict is equal."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def repository_index(http_url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    req = urllib.request.Request(f"http://{http_url}/v2/repository/index", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def add_command(repo: Path, name: str, onnx: Path) -> list[str]:
    return [TRITONKIT, "repo", "add", name, "--repository", str(repo), "--onnx", str(onnx), "--no-warmup"]


@dataclass
class CrashReport:
    runs: int = 0
    kills: int = 0
    completed: int = 0
    corrupt: list[str] = field(default_factory=list)
    old_changed: list[str] = field(default_factory=list)
    ready_checked: int = 0
    delays_s: list[float] = field(default_factory=list)


def publish_duration(repo: Path, name: str, onnx: Path) -> float:
    t0 = time.monotonic()
    subprocess.run(add_command(repo, name, onnx), check=True, capture_output=True, timeout=120)
    return time.monotonic() - t0


def check_versions(repo: Path, name: str, http_url: str, headers: dict[str, str], report: CrashReport,
                   frozen: dict[int, dict[str, tuple[int, int]]]) -> None:
    """Every version on disk and every READY version the server lists matches its manifest."""
    model_dir = repo / name
    for v in version_numbers(model_dir):
        bad = verify_version(model_dir / str(v))
        if bad:
            report.corrupt.append(f"disk v{v}: {bad}")
    for row in repository_index(http_url, headers):
        if row.get("name") == name and row.get("state") == "READY":
            report.ready_checked += 1
            bad = verify_version(model_dir / str(row["version"]))
            if bad:
                report.corrupt.append(f"served v{row['version']}: {bad}")
    for v, state in frozen.items():
        if tree_state(model_dir / str(v)) != state:
            report.old_changed.append(f"v{v}")
    stray = [p.name for p in model_dir.iterdir() if not (p.name.isdigit() or p.name in ("config.pbtxt", "labels.txt"))]
    if stray:
        report.corrupt.append(f"stray entries in {model_dir}: {stray}")


def crash_loop(repo: Path, name: str, onnx: Path, http_url: str, headers: dict[str, str], runs: int,
               seed: int = 0, log: Any = None) -> CrashReport:
    """``runs`` publishes, each SIGKILLed after a random delay in [0, 1.2 x a normal publish]."""
    rng = random.Random(seed)
    report = CrashReport()
    span = publish_duration(repo, name, onnx)
    frozen = {v: tree_state(repo / name / str(v)) for v in version_numbers(repo / name)}
    for i in range(runs):
        delay = rng.uniform(0.0, 1.2 * span)
        report.runs += 1
        report.delays_s.append(delay)
        proc = subprocess.Popen(add_command(repo, name, onnx), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            proc.wait(delay)
            report.completed += 1
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            report.kills += 1
        if log:
            log(f"run {i + 1}/{runs}: delay {delay:.2f}s rc {proc.returncode}")
        check_versions(repo, name, http_url, headers, report, frozen)
        frozen = {v: tree_state(repo / name / str(v)) for v in version_numbers(repo / name)}
    return report
