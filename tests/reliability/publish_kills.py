"""Kill ``tritonkit repo add`` at every publish step and at random moments while a polling Triton
watches the repository, and check after each kill that the server serves every version the live
config names, each with the config its manifest recorded (max batch, dims, labels).

Shared by ``tests/reliability/test_publish_crash.py`` (a handful of kills) and
``benchmarks/bench_soak.py --crash-runs N``.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.repository.manifest import read_live_config, recorded_config, verify_version
from toolkit.repository.storage import STEPS, version_numbers
from toolkit.repository.validate.manifest import named_versions

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
# Two publish variants whose configs differ in what a wrong config would break: batch size and labels.
LETTERS = [chr(ord("a") + i) for i in range(10)]


def add_command(repo: Path, name: str, onnx: Path, variant: int, labels_file: Path) -> list[str]:
    # --force: a variant equal to the newest version would otherwise be 'unchanged' and never reach a fault step.
    cmd = [TRITONKIT, "repo", "add", name, "--repository", str(repo), "--onnx", str(onnx), "--no-warmup", "--force"]
    return cmd + (["--max-batch", "8", "--labels", str(labels_file)] if variant % 2 else ["--max-batch", "16"])


def _get(url: str, headers: dict[str, str], data: bytes | None = None) -> Any:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def ready_versions(http_url: str, headers: dict[str, str], name: str) -> set[int]:
    rows = _get(f"http://{http_url}/v2/repository/index", headers, b"{}")
    return {int(r["version"]) for r in rows if r.get("name") == name and r.get("state") == "READY"}


def served_facts(http_url: str, headers: dict[str, str], name: str, version: int) -> tuple:
    """What a wrong config would change: max batch, input dims, the label file (content-addressed)."""
    cfg = _get(f"http://{http_url}/v2/models/{name}/versions/{version}/config", headers)
    return (int(cfg.get("max_batch_size", 0)), [[int(d) for d in i.get("dims", [])] for i in cfg.get("input", [])],
            [o.get("label_filename", "") for o in cfg.get("output", [])])


def recorded_facts(cfg: Any) -> tuple:
    return (cfg.max_batch_size, [list(i.dims) for i in cfg.input], [o.label_filename for o in cfg.output])


@dataclass
class KillReport:
    runs: int = 0
    kills: int = 0
    completed: int = 0
    mismatches: list[str] = field(default_factory=list)  # a version served with a config not its own
    corrupt: list[str] = field(default_factory=list)
    served_checked: int = 0
    unpublished: int = 0  # version folders left by a kill that no config names
    points: list[str] = field(default_factory=list)


def check_served(repo: Path, name: str, http_url: str, headers: dict[str, str], report: KillReport,
                 settle_s: float = 30.0) -> None:
    """Wait until the server has polled the current state, then compare what it serves with the manifests."""
    model_dir = repo / name
    live = read_live_config(model_dir)
    named = set(named_versions(live, version_numbers(model_dir)))
    want = {v: recorded_facts(recorded_config(model_dir / str(v))) for v in named}
    for v in named:
        if recorded_facts(live) != want[v]:
            report.mismatches.append(f"disk: live config names v{v} but it was published with another config")
    report.unpublished += len([v for v in version_numbers(model_dir) if v > max(named)])
    deadline = time.monotonic() + settle_s
    seen: dict[int, tuple] = {}
    ready: set[int] = set()
    while time.monotonic() < deadline:
        try:
            ready = ready_versions(http_url, headers, name)
            seen = {v: served_facts(http_url, headers, name, v) for v in ready}
        except OSError:
            time.sleep(0.3)
            continue
        if ready == named and all(seen[v] == want[v] for v in named):
            break
        time.sleep(0.3)
    for v in sorted(ready | named):
        if v not in ready:
            report.mismatches.append(f"server: named v{v} not READY (READY: {sorted(ready)})")
        elif v not in named:
            report.mismatches.append(f"server: v{v} READY but no config names it")
        elif seen.get(v) != want[v]:
            report.mismatches.append(f"server: v{v} served as {seen.get(v)}, manifest records {want[v]}")
        else:
            report.served_checked += 1
    for v in version_numbers(model_dir):
        bad = verify_version(model_dir / str(v))
        if bad:
            report.corrupt.append(f"v{v}: {bad}")


def kill_loop(repo: Path, name: str, onnx: Path, http_url: str, headers: dict[str, str], *, steps: list[str],
              random_kills: int, seed: int = 0, log: Callable[[str], None] | None = None) -> KillReport:
    """One killed publish per step in ``steps`` (the fault hook), then ``random_kills`` SIGKILLs at a
    random moment between the command's start-up time and 1.1 x a normal publish; after each,
    :func:`check_served`."""
    labels_file = repo.parent / "letters.txt"
    labels_file.write_text("\n".join(LETTERS) + "\n")
    rng = random.Random(seed)
    report = KillReport()
    t0 = time.monotonic()
    subprocess.run(add_command(repo, name, onnx, 1, labels_file), check=True, capture_output=True, timeout=120)
    span = time.monotonic() - t0
    t0 = time.monotonic()  # start-up alone (imports), so random kills land inside the publish itself
    subprocess.run([TRITONKIT, "repo", "list", "--repository", str(repo)], capture_output=True, timeout=120)
    startup = min(time.monotonic() - t0, 0.8 * span)
    check_served(repo, name, http_url, headers, report)
    plan = [(s, None) for s in steps] + [(None, rng.uniform(startup, 1.1 * span)) for _ in range(random_kills)]
    for i, (step, delay) in enumerate(plan):
        report.runs += 1
        env = {**os.environ, **({"TRITONKIT_FAULT_AT": step} if step else {})}
        proc = subprocess.Popen(add_command(repo, name, onnx, i, labels_file), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        try:
            proc.wait(120 if step else delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        if proc.returncode == -signal.SIGKILL:
            report.kills += 1
        else:
            report.completed += 1
        point = f"step {step}" if step else f"random {delay:.2f}s"
        report.points.append(point)
        before = len(report.mismatches)
        check_served(repo, name, http_url, headers, report)
        if log:
            log(f"run {i + 1}/{len(plan)}: {point} rc {proc.returncode} "
                f"mismatches +{len(report.mismatches) - before}")
    return report


ALL_STEPS = [s for s in STEPS if s != "done"]
