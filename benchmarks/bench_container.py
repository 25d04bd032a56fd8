"""Triton in a container vs the embedded server, side by side in one run (issue 17's figures).

    .venv/bin/python benchmarks/bench_container.py [--starts 3] [--rounds 3] [--measurement-ms 2000] [--quick]

1. Start to ready, each runtime started ``--starts`` times on the default repository (the median
   counts): from the server process's start (``tritonserver``, or the engine client ``podman run`` /
   ``docker run``) until ``/v2/health/ready`` answers and the admin key is checked
   (``ready_seconds``), and the whole ``start()`` call (engine checks, orphan sweep included).
2. Served throughput of the default model (``digits``), batch-1 requests at concurrency 16 over gRPC
   (perf_analyzer), the three servers running at once and measured in ``--rounds`` interleaved rounds
   (this machine's speed drifts; each server's median round counts).

Runtimes: ``embedded`` (the wheel's tritonserver), ``podman`` (tritonkit's CPU stand-in image, podman
directly) and ``docker CLI`` (the same image through the docker CLI against ``podman system service``
on a private socket; skipped when no docker CLI is here). Needs root and podman (see
scripts/setup-containers.sh); builds the stand-in image once (cached). Prints a table and writes a
Markdown + JSON report under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def default_repository(work: Path) -> Path:
    """A copy of the default repository (``model_repository/``, else built as ``make repo`` does), readable
    by the image's non-root user."""
    repo = work / "model_repository"
    if repo.exists():
        shutil.rmtree(repo)
    source = ROOT / "model_repository"
    if source.is_dir() and (source / "digits").is_dir():
        shutil.copytree(source, repo)
    else:
        from toolkit.pipeline import build_repository

        build_repository(repo, checkpoint=work / "digits.pt", onnx_path=work / "digits.onnx", log=lambda *_: None)
    for path in [repo, *repo.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return repo


def make_server(kind: str, repo: Path, image: str, engines: dict[str, Any], log_path: Path) -> Any:
    from toolkit.serve.container import DockerServer
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    if kind == "embedded":
        return EmbeddedServer(repo, log_path=log_path, **ports)
    return DockerServer(repo, image=image, engine=engines[kind], gpus=False, log_path=log_path, **ports)


def timed_start(server: Any) -> tuple[float, float]:
    t0 = time.monotonic()
    server.start(timeout=300)
    return server.ready_seconds, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / ".tritonkit" / "bench-container"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reports"))
    ap.add_argument("--starts", type=int, default=3, help="Starts per runtime for start-to-ready.")
    ap.add_argument("--rounds", type=int, default=3, help="Interleaved throughput rounds.")
    ap.add_argument("--measurement-ms", type=int, default=2000)
    ap.add_argument("--stability-pct", type=int, default=25)
    ap.add_argument("--quick", action="store_true", help="One start, one short round: checks it runs.")
    args = ap.parse_args()
    if args.quick:
        args.starts, args.rounds, args.measurement_ms, args.stability_pct = 1, 1, 1000, 100

    from tests.container.podman_service import PodmanService
    from toolkit.perf.analyzer import run_perf_analyzer
    from toolkit.perf.report import report_dir
    from toolkit.serve.engine import Engine
    from toolkit.serve.image import build_image, image_info, require_engine

    podman = require_engine()  # refuses, in one line, where no container can run
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folder = report_dir(args.out, "bench_container")
    log("building (or finding) the stand-in image")
    t0 = time.monotonic()
    built = build_image(progress=log)
    image_s = time.monotonic() - t0
    info = image_info(built.tag) or {}
    repo = default_repository(work)
    engines: dict[str, Any] = {"podman": Engine("podman", podman)}
    service = None
    docker = shutil.which("docker")
    if docker:
        service = PodmanService(podman, docker, Path(tempfile.mkdtemp(prefix="bench-podman-service.")))
        failed = service.wait_answering()
        if failed:
            log(f"{failed}; the docker CLI path is skipped")
        else:
            engines["docker CLI"] = service.engine
    kinds = ["embedded", *engines]
    starts: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    throughput: dict[str, list[Any]] = {k: [] for k in kinds}
    servers: dict[str, Any] = {}
    try:
        for i in range(args.starts):  # interleaved, so drift hits every runtime alike
            for kind in kinds:
                server = make_server(kind, repo, built.tag, engines, folder / f"{kind.replace(' ', '_')}-{i}.log")
                starts[kind].append(timed_start(server))
                log(f"{kind}: ready in {starts[kind][-1][0]:.2f} s (start() {starts[kind][-1][1]:.2f} s)")
                if i == args.starts - 1:
                    servers[kind] = server  # the last start of each serves the throughput rounds
                else:
                    server.stop()
        pa = {"measurement_ms": args.measurement_ms, "stability_pct": args.stability_pct, "max_trials": 8}
        for r in range(1, args.rounds + 1):
            for kind in kinds:
                log(f"{kind}: digits, concurrency 16, round {r}/{args.rounds}")
                throughput[kind].append(run_perf_analyzer(
                    "digits", servers[kind].grpc_url, folder / "perf" / f"round{r}" / kind.replace(" ", "_"),
                    concurrency=[16], batch_size=1, label=f"{kind} round {r}", **pa))
    finally:
        for server in servers.values():
            server.stop()
        if service is not None:
            service.stop()

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    rows = []
    for kind in kinds:
        tput = [run.rows[0].infer_per_sec for run in throughput[kind] if run.rows]
        # An unstable window has no percentiles (NaN): the stable rounds' p99 only.
        lat = [run.rows[0].p99_us / 1000 for run in throughput[kind] if run.rows and math.isfinite(run.rows[0].p99_us)]
        rows.append({"runtime": kind, "ready_s": median([s[0] for s in starts[kind]]),
                     "start_call_s": median([s[1] for s in starts[kind]]),
                     "ready_all_s": [round(s[0], 2) for s in starts[kind]],
                     "infer_per_s": median(tput), "infer_per_s_rounds": [round(t, 1) for t in tput],
                     "p99_ms": median(lat)})
    base = rows[0]["infer_per_s"]
    header = (f"{'runtime':<12} {'ready s':>8} {'start() s':>10} {'digits infer/s @c16':>20} {'vs embedded':>12} "
              f"{'p99 ms':>8}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['runtime']:<12} {row['ready_s']:>8.2f} {row['start_call_s']:>10.2f} "
                     f"{row['infer_per_s']:>20.1f} {row['infer_per_s'] / base:>12.2f} {row['p99_ms']:>8.1f}")
    size_mb = (info.get("size") or 0) / 1e6
    facts = (f"image {built.tag} ({size_mb:.0f} MB; {'built' if built.built else 'found cached'} in {image_s:.1f} s), "
             f"{os.cpu_count()} CPUs, {args.starts} starts, {args.rounds} rounds of {args.measurement_ms} ms windows")
    print(facts)
    print("\n".join(lines))
    (folder / "results.json").write_text(json.dumps({"facts": facts, "rows": rows}, indent=2))
    (folder / "report.md").write_text(
        "# Triton in a container vs embedded\n\n" + facts + "\n\n```\n" + "\n".join(lines) + "\n```\n\n"
        "ready s: median seconds from the server process's start to ready (admin key checked); start() s: the "
        "whole call (engine probe, orphan sweep, port checks). Throughput: perf_analyzer, gRPC, batch-1 "
        "requests, concurrency 16, median of the interleaved rounds; every server runs on this machine's "
        "CPUs, shared with perf_analyzer.\n")
    log(f"report: {folder / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
