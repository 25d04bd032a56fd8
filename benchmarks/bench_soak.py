"""Soak: 80% of the measured saturation for N minutes; errors, p99 drift and RSS drift.

The load is open-loop gRPC (requests on schedule, each with a 10 s timeout) in consecutive windows
of ``--window`` seconds; per window: accepted, errors, p50/p99 and the RSS of tritonserver + its
python stubs. Drift = last window minus first window. ``--model digits`` (default) serves the real
ONNX model through the embedded Triton; ``--model slow`` the fixed-cost python model.

    .venv/bin/python benchmarks/bench_soak.py --minutes 15 [--model digits|slow] [--load 0.8]
    .venv/bin/python benchmarks/bench_soak.py --crash-runs 30   # only: SIGKILL `repo add` 30 times

``--crash-runs N`` instead kills ``tritonkit repo add`` N times, at every publish step boundary
(cycled, half the runs) and at random moments, while a polling Triton watches the repository; after
each kill it checks the server serves every version the live config names with the config its
manifest recorded, and reports runs / kills / mismatches / corrupt versions (writes crash_<time>).

Writes ``benchmarks/reports/soak_<time>.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--load", type=float, default=0.8, help="fraction of saturation")
    ap.add_argument("--window", type=float, default=30.0, help="seconds per measured window")
    ap.add_argument("--model", choices=["slow", "digits"], default="digits")
    ap.add_argument("--onnx", type=Path, default=ROOT / "build" / "digits_smallcnn.onnx")
    ap.add_argument("--crash-runs", type=int, default=0, help="run the publish-crash loop instead")
    args = ap.parse_args()
    if args.crash_runs:
        crash_only(args)
        return
    from tests.reliability.conftest import write_slow_model
    from tests.reliability.loadgen import open_loop, rss_mb, saturation
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    windows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        if args.model == "slow":
            write_slow_model(repo, "slow", max_queue_size=0, sleep_ms=20)
        else:
            from toolkit.repository.config import ServingOptions
            from toolkit.repository.publish import publish_onnx

            publish_onnx(repo, "digits", args.onnx, ServingOptions(max_batch_size=8))
        server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                                log_path=Path(tmp) / "triton.log")
        with server:
            sat = saturation(server.grpc_url, args.model, seconds=5.0, threads=8)
            rate = args.load * sat
            print(f"saturation {sat:.0f}/s; soaking at {rate:.0f}/s for {args.minutes:g} min")
            rss0 = rss_mb(server.pid)
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end - 1:
                secs = min(args.window, end - time.monotonic())
                r = open_loop(server.grpc_url, args.model, rate, secs, server_pid=server.pid, timeout_s=10)
                s = r.summary()
                errors = s["rejected"] + s["timeouts"] + s["other_errors"]
                windows.append({"t_s": round(sum(w["seconds"] for w in windows) + s["seconds"], 1), **s,
                                "errors": errors})
                print(f"  window {len(windows)}: {s['accepted_per_s']}/s p99 {s['p99_ms']} ms errors {errors} "
                      f"rss {s['rss_end_mb']} MiB")
            alive = server.is_ready()
    first, last = windows[0], windows[-1]
    result = {
        "model": args.model, "minutes": args.minutes, "saturation_per_s": round(sat, 1),
        "offered_per_s": round(rate, 1), "windows": windows, "server_ready_after": alive,
        "errors": sum(w["errors"] for w in windows), "requests": sum(w["offered"] for w in windows),
        "p99_first_ms": first["p99_ms"], "p99_last_ms": last["p99_ms"],
        "p99_drift_ms": round(last["p99_ms"] - first["p99_ms"], 2),
        "rss_start_mb": round(rss0, 1), "rss_end_mb": last["rss_end_mb"],
        "rss_drift_mb": round(last["rss_end_mb"] - rss0, 1),
    }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = ROOT / "benchmarks" / "reports" / f"soak_{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = [f"# Soak: {args.load:.0%} of saturation ({result['saturation_per_s']}/s) for {args.minutes:g} min "
             f"({args.model})", "",
             f"requests {result['requests']}, errors {result['errors']}, p99 {result['p99_first_ms']} -> "
             f"{result['p99_last_ms']} ms (drift {result['p99_drift_ms']} ms), RSS {result['rss_start_mb']} -> "
             f"{result['rss_end_mb']} MiB (drift {result['rss_drift_mb']} MiB), server ready after: {alive}", "",
             "| window end s | accepted/s | p50 ms | p99 ms | errors | RSS MiB |", "|---|---|---|---|---|---|"]
    lines += [f"| {w['t_s']} | {w['accepted_per_s']} | {w['p50_ms']} | {w['p99_ms']} | {w['errors']} | "
              f"{w['rss_end_mb']} |" for w in windows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:3]))
    print(f"wrote {out}.md")


def crash_only(args: argparse.Namespace) -> None:
    """Kill publishes at every step boundary (cycled) and at random moments; count mismatches."""
    import shutil

    from tests.reliability.publish_kills import ALL_STEPS, kill_loop
    from toolkit.repository.publish import publish_onnx
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    n_steps = min(args.crash_runs, max(len(ALL_STEPS), args.crash_runs // 2))
    steps = [ALL_STEPS[i % len(ALL_STEPS)] for i in range(n_steps)]
    with tempfile.TemporaryDirectory() as tmp:
        repo, onnx = Path(tmp) / "repo", Path(tmp) / "digits.onnx"
        shutil.copy(args.onnx, onnx)
        publish_onnx(repo, "digits", onnx)
        server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                                model_control="poll", poll_secs=1, log_path=Path(tmp) / "triton.log")
        t0 = time.monotonic()
        with server:
            r = kill_loop(repo, "digits", onnx, server.http_url, server.admin_headers, steps=steps,
                          random_kills=args.crash_runs - n_steps, seed=30, log=print)
            ready = server.is_ready()
    result = {"runs": r.runs, "kills": r.kills, "completed": r.completed, "step_kills": n_steps,
              "random_kills": args.crash_runs - n_steps, "mismatches": r.mismatches, "corrupt": r.corrupt,
              "served_versions_checked": r.served_checked, "unpublished_left": r.unpublished,
              "points": r.points, "server_ready_after": ready, "seconds": round(time.monotonic() - t0, 1)}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = ROOT / "benchmarks" / "reports" / f"crash_{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"runs {r.runs} kills {r.kills} (at steps {n_steps}, random {args.crash_runs - n_steps}) completed "
          f"{r.completed} mismatches {len(r.mismatches)} (versions served under a config other than their own) "
          f"corrupt {len(r.corrupt)} served versions checked {r.served_checked}; wrote {out}")


if __name__ == "__main__":
    main()
