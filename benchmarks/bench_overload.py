"""Overload for 60 s: 4x the measured saturation against a model with ``max_queue_size`` set.

Reports offered / accepted / rejected rates, p99 of accepted and rejected requests, and the RSS of
tritonserver + its python stubs (start, max, end). ``--model slow`` (default) is a python model with
a fixed 20 ms cost per execution, so the server (not this Python load generator on a 2-core box) is
the bottleneck; ``--model digits`` publishes the real ONNX model with the same queue bound.

    .venv/bin/python benchmarks/bench_overload.py [--seconds 60] [--factor 4] [--model slow|digits]

Writes ``benchmarks/reports/overload_<time>.{md,json}``.
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
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--max-queue-size", type=int, default=8)
    ap.add_argument("--model", choices=["slow", "digits"], default="slow")
    ap.add_argument("--onnx", type=Path, default=ROOT / "build" / "digits_smallcnn.onnx")
    args = ap.parse_args()
    from tests.reliability.overload import run_overload

    with tempfile.TemporaryDirectory() as tmp:
        r = run_overload(Path(tmp), args.seconds, args.factor, max_queue_size=args.max_queue_size,
                         model=args.model, onnx=args.onnx if args.model == "digits" else None,
                         max_batch_size=4 if args.model == "slow" else 8)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = ROOT / "benchmarks" / "reports" / f"overload_{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, indent=2))
    lines = [
        f"# Overload: {args.factor:g}x saturation for {r['seconds']} s ({r['model']}, max_queue_size "
        f"{r['max_queue_size']})", "",
        "| saturation/s | offered/s | accepted/s | rejected/s | accepted p50 ms | accepted p99 ms | "
        "rejected p99 ms | timeouts | other errors | RSS start/max/end MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['saturation_per_s']} | {r['offered_per_s']} | {r['accepted_per_s']} | {r['rejected_per_s']} | "
        f"{r['p50_ms']} | {r['p99_ms']} | {r['rejected_p99_ms']} | {r['timeouts']} | {r['other_errors']} | "
        f"{r['rss_start_mb']}/{r['rss_max_mb']}/{r['rss_end_mb']} |", "",
        f"Server ready afterwards: {r['server_ready_after']}; closed-loop rate right after: {r['after_per_s']}/s.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}.md")


if __name__ == "__main__":
    main()
